//! Every module-scope `const` of the WGSL stages against its Rust copy: the values are read from
//! the naga module of each stage (parsed, no GPU), so a constant changed on one side only fails
//! here. A constant the test does not know fails too: a new WGSL `const` must be paired with its
//! Rust twin below or listed as shader-internal (with its relation to the others, checked).

use aimc::engine::stages::{self, Mulhi, Stage};
use std::collections::BTreeMap;

/// A module-scope constant's value, as naga evaluated it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    U32(u32),
    I32(i32),
    /// f32 by its bits: a Rust twin must be the same float, not a near one.
    F32(u32),
}

/// The module-scope constants of one stage's module (the `mulhi32` variant, the common files and
/// the stage file), by name.
fn constants(stage: Stage) -> BTreeMap<String, Value> {
    let src = stage.module_source_with(Mulhi::Halves);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}.wgsl: {}", stage.name(), e.emit_to_string(&src)));
    let mut out = BTreeMap::new();
    for (_, c) in module.constants.iter() {
        let name = c.name.clone().unwrap_or_else(|| panic!("{}.wgsl: an unnamed module-scope constant", stage.name()));
        let value = match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => Value::U32(v),
            naga::Expression::Literal(naga::Literal::I32(v)) => Value::I32(v),
            naga::Expression::Literal(naga::Literal::F32(v)) => Value::F32(v.to_bits()),
            ref e => panic!("{}.wgsl: const {name} is not a u32, i32 or f32 literal after evaluation: {e:?}", stage.name()),
        };
        out.insert(name, value);
    }
    out
}

/// (stage whose module holds it, WGSL name, the Rust copy, where the Rust copy lives).
fn pairs() -> Vec<(Stage, &'static str, Value, &'static str)> {
    use aimc::engine::cpu;
    use aimc::rng;
    let u = Value::U32;
    let f = |x: f32| Value::F32(x.to_bits());
    vec![
        // shaders/common/philox.wgsl against src/rng/mod.rs (every stage includes it; `rng` is its own test stage).
        (Stage::Rng, "PHILOX_M0", u(rng::PHILOX_M0), "rng::PHILOX_M0"),
        (Stage::Rng, "PHILOX_M1", u(rng::PHILOX_M1), "rng::PHILOX_M1"),
        (Stage::Rng, "PHILOX_W0", u(rng::PHILOX_W0), "rng::PHILOX_W0"),
        (Stage::Rng, "PHILOX_W1", u(rng::PHILOX_W1), "rng::PHILOX_W1"),
        (Stage::Rng, "STREAM_PROG", u(rng::stream::PROG), "rng::stream::PROG"),
        (Stage::Rng, "STREAM_READ", u(rng::stream::READ), "rng::stream::READ"),
        (Stage::Rng, "STREAM_GDC_BASE", u(rng::stream::GDC_BASE), "rng::stream::GDC_BASE"),
        (Stage::Rng, "STREAM_OUT", u(rng::stream::OUT), "rng::stream::OUT"),
        (Stage::Rng, "STREAM_FAULT", u(rng::stream::FAULT), "rng::stream::FAULT"),
        (Stage::Rng, "STREAM_INP", u(rng::stream::INP), "rng::stream::INP"),
        (Stage::Rng, "W_NOISE_GROUP", u(rng::W_NOISE_GROUP), "rng::W_NOISE_GROUP"),
        // shaders/common/layout.wgsl: when bound management's level-1 redo runs in the GEMM.
        (Stage::Rng, "REDO_GEMM_SHARE", u(stages::REDO_GEMM_SHARE), "engine::stages::REDO_GEMM_SHARE"),
        // The Box–Muller angle: the twins use the standard library's constant.
        (Stage::Rng, "TAU", f(std::f32::consts::TAU), "std::f32::consts::TAU (rng::normal4)"),
        // Stage shapes the plan dispatches by and the twins loop by.
        (Stage::Drift, "CHUNK", u(stages::CHUNK), "engine::stages::CHUNK"),
        (Stage::WeightError, "CHUNK", u(stages::CHUNK), "engine::stages::CHUNK"),
        (Stage::Mvm, "BM", u(stages::MVM_BM), "engine::stages::MVM_BM"),
        (Stage::Mvm, "BN", u(stages::MVM_BN), "engine::stages::MVM_BN"),
        (Stage::MvmFull, "BM", u(stages::MVM_FULL_BM), "engine::stages::MVM_FULL_BM"),
        (Stage::MvmFull, "BN", u(stages::MVM_FULL_BN), "engine::stages::MVM_FULL_BN"),
        (Stage::MvmFull, "BM", u(stages::MVM_MIN_BM), "engine::stages::MVM_MIN_BM (the smallest sample block)"),
        (Stage::MvmNarrow, "BM", u(stages::MVM_NARROW_BM), "engine::stages::MVM_NARROW_BM"),
        (Stage::MvmNarrow, "BN", u(stages::MVM_NARROW_BN), "engine::stages::MVM_NARROW_BN"),
        // A layer goes narrow when its tallest tile fits one narrow block of outputs.
        (Stage::MvmNarrow, "BN", u(stages::MVM_NARROW_ROWS), "engine::stages::MVM_NARROW_ROWS"),
        (Stage::Rng, "MAX_DRIFT_KNOTS", u(aimc::device::MAX_DRIFT_KNOTS as u32), "device::MAX_DRIFT_KNOTS"),
        (Stage::Rng, "MAX_PROG_KNOTS", u(aimc::device::MAX_PROG_KNOTS as u32), "device::MAX_PROG_KNOTS"),
        (Stage::Rng, "MAX_READ_KNOTS", u(aimc::device::MAX_READ_KNOTS as u32), "device::MAX_READ_KNOTS"),
        (Stage::Rng, "MAX_RELAX_TIMES", u(aimc::device::MAX_RELAX_TIMES as u32), "device::MAX_RELAX_TIMES"),
        (Stage::Rng, "PROG_TABLE_AT", u(aimc::engine::layout::PROG_TABLE_AT as u32), "engine::layout::PROG_TABLE_AT"),
        (Stage::Rng, "READ_TABLE_AT", u(aimc::engine::layout::READ_TABLE_AT as u32), "engine::layout::READ_TABLE_AT"),
        (Stage::Dac, "DAC_WG", u(stages::DAC_WG), "engine::stages::DAC_WG"),
        (Stage::Dac, "DAC_LANES", u(stages::DAC_LANES), "engine::stages::DAC_LANES"),
        (Stage::AttentionKv, "KV_BF", u(stages::KV_BF), "engine::stages::KV_BF"),
        (Stage::AttentionKv, "KV_BC", u(stages::KV_BC), "engine::stages::KV_BC"),
        (Stage::AttentionOut, "OUT_BC", u(stages::OUT_BC), "engine::stages::OUT_BC"),
        (Stage::AttentionKv, "ATTN_BLOCK", u(stages::ATTN_BLOCK as u32), "engine::stages::ATTN_BLOCK"),
        (Stage::AttentionOut, "ATTN_BLOCK", u(stages::ATTN_BLOCK as u32), "engine::stages::ATTN_BLOCK"),
        (Stage::LinearKv, "ATTN_BLOCK", u(stages::ATTN_BLOCK as u32), "engine::stages::ATTN_BLOCK"),
        (Stage::LinearOut, "ATTN_BLOCK", u(stages::ATTN_BLOCK as u32), "engine::stages::ATTN_BLOCK"),
        (Stage::TokenNll, "NLL_BLOCK", u(stages::NLL_BLOCK), "engine::stages::NLL_BLOCK"),
        (Stage::TokenNll, "NLL_WG", u(stages::NLL_WG), "engine::stages::NLL_WG"),
        (Stage::TokenNll, "NLL_SLOT_WORDS", u(stages::NLL_SLOT_WORDS), "engine::stages::NLL_SLOT_WORDS"),
        (Stage::AnswerSpan, "SPAN_SLOT_WORDS", u(stages::SPAN_SLOT_WORDS), "engine::stages::SPAN_SLOT_WORDS"),
        (Stage::AnswerSpan, "SEGMENT_BIT", u(aimc::workload::transformer::SEGMENT_BIT), "workload::transformer::SEGMENT_BIT"),
        (Stage::MoeGate, "MAX_EXPERTS", u(cpu::moe_gate::MAX_EXPERTS), "engine::cpu::moe_gate::MAX_EXPERTS"),
        (Stage::AttentionSoftmax, "SQ", u(stages::SOFTMAX_SQ), "engine::stages::SOFTMAX_SQ"),
        (Stage::Bound, "VB", u(stages::BOUND_VB), "engine::stages::BOUND_VB"),
        (Stage::AttentionSoftmax, "MAX_D_HEAD", u(cpu::attention_softmax::MAX_D_HEAD), "engine::cpu::attention_softmax::MAX_D_HEAD"),
        (Stage::KernelError, "KE_WG", u(cpu::kernel_error::KE_WG as u32), "engine::cpu::kernel_error::KE_WG"),
        // The random-feature map's √2 (twin: cpu::feature_map's SQRT2, the standard library's).
        (Stage::FeatureMap, "SQRT2", f(std::f32::consts::SQRT_2), "std::f32::consts::SQRT_2 (engine::cpu::feature_map)"),
    ]
}

/// A relation between a stage's constants, or None where any value is right.
type Relation = Option<Box<dyn Fn(&BTreeMap<String, Value>) -> Value>>;

/// Constants with no Rust copy: a block's internal staging, derived from its shape and checked
/// against the relation its comment in the shader states, or free (no twin depends on it).
fn internal() -> Vec<(Stage, &'static str, Relation, &'static str)> {
    fn get(c: &BTreeMap<String, Value>, k: &str) -> u32 {
        match c[k] {
            Value::U32(v) => v,
            v => panic!("{k}: {v:?} is not a u32"),
        }
    }
    fn rel(f: impl Fn(&BTreeMap<String, Value>) -> Value + 'static) -> Relation {
        Some(Box::new(f))
    }
    vec![
        (Stage::Mvm, "BK", None, "k per step: the twin sums k in increasing order whatever it is"),
        (Stage::Mvm, "RV", rel(|c| Value::U32(get(c, "BM") / 4)), "vec4 per staged row = BM / 4"),
        (Stage::Mvm, "STAGE", rel(|c| Value::U32(get(c, "BK") * get(c, "RV"))), "vec4 per buffer = BK * RV"),
        (Stage::MvmFull, "BK", None, "k per step: the twin sums k in increasing order whatever it is"),
        (Stage::MvmFull, "RV", rel(|c| Value::U32(get(c, "BM") / 4)), "vec4 per staged row = BM / 4"),
        (Stage::MvmFull, "STAGE", rel(|c| Value::U32(get(c, "BK") * get(c, "RV"))), "vec4 per buffer = BK * RV"),
        (Stage::MvmNarrow, "BK", None, "k per step: the twin sums k in increasing order whatever it is"),
        (Stage::MvmNarrow, "RVX", rel(|c| Value::U32(get(c, "BM") / 4)), "vec4 per staged sample row = BM / 4"),
        (Stage::MvmNarrow, "RVW", rel(|c| Value::U32(get(c, "BN") / 4)), "vec4 per staged output row = BN / 4"),
        (
            Stage::AttentionKv,
            "KV_BT",
            rel(|c| Value::U32(if get(c, "ATTN_BLOCK").is_multiple_of(get(c, "KV_BT")) { get(c, "KV_BT") } else { 0 })),
            "tokens per step: divides ATTN_BLOCK (prefixes are stored at step starts)",
        ),
        (Stage::AttentionOut, "OUT_BK", None, "features per step: the twin sums features in increasing order whatever it is"),
        (Stage::Bound, "BW", None, "workgroup size of `bound`: a fixed grid of workgroups strides over the units whatever its size"),
        (Stage::AttentionSoftmax, "BK", None, "keys per staged block: the twin takes the keys one at a time in increasing order whatever it is"),
        (Stage::AttentionSoftmax, "DV", None, "vec4 per head row in the register path: heads of up to 4 DV columns take it, wider ones the global path"),
        (Stage::Bound, "KC", None, "inputs per staging step: every sum runs over k in increasing order whatever it is"),
        (Stage::TokenNll, "NONE", None, "the index of an empty share of a row: no vocabulary index reaches it"),
    ]
}

#[test]
fn wgsl_constants_equal_their_rust_copies() {
    let mut failures = Vec::new();
    for (stage, name, rust, rust_name) in pairs() {
        match constants(stage).get(name) {
            None => failures.push(format!("{}.wgsl: no module-scope const {name} (Rust copy {rust_name} = {rust:?})", stage.name())),
            Some(&wgsl) if wgsl != rust => failures.push(format!("{}.wgsl: const {name} = {wgsl:?}, but Rust {rust_name} = {rust:?}", stage.name())),
            Some(_) => {}
        }
    }
    for (stage, name, want, why) in internal() {
        let c = constants(stage);
        match c.get(name) {
            None => failures.push(format!("{}.wgsl: no module-scope const {name} ({why})", stage.name())),
            Some(&wgsl) => {
                if let Some(want) = want.map(|f| f(&c)).filter(|&w| w != wgsl) {
                    failures.push(format!("{}.wgsl: const {name} = {wgsl:?}, expected {want:?} ({why})", stage.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "WGSL constants differ from Rust:\n{}", failures.join("\n"));
}

#[test]
fn every_wgsl_constant_is_paired_or_internal() {
    let known: Vec<(Stage, &str)> = pairs().iter().map(|p| (p.0, p.1)).chain(internal().iter().map(|p| (p.0, p.1))).collect();
    // The common files' constants are in every module: pair them once, under `Stage::Rng`.
    let common = constants(Stage::Rng);
    let common_known: Vec<&str> = known.iter().filter(|k| k.0 == Stage::Rng).map(|k| k.1).collect();
    let mut missing = Vec::new();
    for stage in Stage::ALL {
        for name in constants(stage).keys() {
            let covered = if common.contains_key(name) { common_known.contains(&name.as_str()) } else { known.contains(&(stage, name.as_str())) };
            if !covered {
                missing.push(format!("{}.wgsl: const {name}", stage.name()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "WGSL constants with no Rust copy checked in tests/suite/wgsl_constants.rs (add the pair, or list it as internal):\n{}",
        missing.join("\n")
    );
}
