//! Every loop of every WGSL stage terminates: the proof that lets the default shader modules drop
//! naga's loop guards (`ShaderChecks::On`, src/engine/gpu/mod.rs). Parsed from the modules as the
//! GPU backend assembles them (both `mulhi32` variants), no GPU needed.
//!
//! The argument, checked here loop by loop on the source with comments stripped:
//! - `while` is not used.
//! - A `for` loop counts up, `for (var i = a; i < b; i = i + s)`, or halves,
//!   `for (var i = a; i > 0u; i = i >> 1u)` (or `i / 2u`). Its body never assigns `i` nor any name
//!   its bound `b` reads, and `b` reads no workgroup or writable storage variable (which other
//!   invocations could change), so `b` is fixed during the loop and `i` only moves by the update.
//! - A halving loop reaches 0 in at most 32 steps.
//! - A counting loop's step `s` is at least 1 and at most `MAX_STEP`: a literal, a module-scope
//!   constant, the `WG` override (a workgroup size, which pipeline creation bounds to 1 ..= the
//!   adapter's invocation limit), or one of `RUNTIME_STEPS`, each with the reason its value lies in
//!   that range. `i` then reaches `b` without wrapping as long as `b + MAX_STEP <= 2^32`: every
//!   bound is a size of the plan (a tile's inputs, a layer's width, a count of units or tokens)
//!   that the planner limits directly (tile inputs <= 2048, outputs < 2^20, input tiles <= 255)
//!   or that counts elements of a buffer binding (at most 2^32 bytes, so below 2^30 words); all
//!   stay below 2^31 (`planner_keeps_sizes_in_the_counter_range` drives sizes past the planner's
//!   limits and gets typed errors).
//! - A `loop` appears only at the sites of `LEVEL_LOOPS`, whose exit is checked textually.

use aimc::engine::stages::{Mulhi, Stage};
use std::collections::BTreeMap;

/// The largest step a counting loop may take (bounds stay below 2^31, so `i + s` cannot wrap).
const MAX_STEP: u64 = 1 << 16;

/// Steps read at run time, by (stage, step text), and why each lies in 1 ..= MAX_STEP.
const RUNTIME_STEPS: &[(&str, &str, &str)] = &[
    ("dac", "lanes", "`lanes` is `select(DAC_WG, DAC_LANES, ..)`, both constants in 1 ..= 256 (checked below)"),
    ("bound", "nwg.x * nwg.y", "the dispatch grid's workgroup count: at least 1, and the plan dispatches at most BOUND_GROUPS (1024) workgroups"),
];

/// `loop` statements, by stage, with the text their termination rests on: the level counter
/// rises by one per iteration and every live slot retires once it reaches the cap, after which
/// the live count is 0 and the loop breaks.
const LEVEL_LOOPS: &[(&str, &[&str])] = &[("bound", &["level = level + 1u;", "level >= 30u", "live[lid] = 0u;", "== 0u) {\n            break;"])];

/// A stage's module source as the backend builds it, with `//` comments blanked (same length, so
/// offsets stay valid for messages).
fn source(stage: Stage, mulhi: Mulhi) -> String {
    let src = stage.module_source_with(mulhi);
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) => format!("{}{}", &l[..i], " ".repeat(l.len() - i)),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte offsets of `word` as a whole identifier.
fn find_word(src: &str, word: &str) -> Vec<usize> {
    let b = src.as_bytes();
    src.match_indices(word)
        .map(|(i, _)| i)
        .filter(|&i| (i == 0 || !is_ident_byte(b[i - 1])) && b.get(i + word.len()).is_none_or(|&c| !is_ident_byte(c)))
        .collect()
}

/// The offset just past the bracket that closes the one at `open`.
fn matching(src: &str, open: usize) -> usize {
    let b = src.as_bytes();
    let (o, c) = (b[open], if b[open] == b'(' { b')' } else { b'}' });
    let mut depth = 0i32;
    for (i, &ch) in b.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    panic!("unbalanced bracket at {open}");
}

/// The identifiers an expression reads (field names after `.` excluded, calls' names included:
/// harmless, a function name is never assigned).
fn idents(expr: &str) -> Vec<&str> {
    let b = expr.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if is_ident_byte(b[i]) && !b[i].is_ascii_digit() && (i == 0 || b[i - 1] != b'.') {
            let j = (i..b.len()).find(|&j| !is_ident_byte(b[j])).unwrap_or(b.len());
            out.push(&expr[i..j]);
            i = j;
        } else if is_ident_byte(b[i]) {
            i = (i..b.len()).find(|&j| !is_ident_byte(b[j])).unwrap_or(b.len());
        } else {
            i += 1;
        }
    }
    out
}

/// Whether `body` assigns `name` (`name =`, a compound assignment, `++`/`--`, or takes `&name`).
fn assigns(body: &str, name: &str) -> bool {
    let b = body.as_bytes();
    find_word(body, name).into_iter().any(|i| {
        let after = body[i + name.len()..].trim_start();
        let ab = after.as_bytes();
        let plain = ab.first() == Some(&b'=') && ab.get(1) != Some(&b'=');
        let compound = ["+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", ">>=", "<<=", "++", "--"].iter().any(|op| after.starts_with(op));
        // An indexed or field store (`name[i] = ..`, `name.x = ..`) changes an element, which a
        // bound of the form `name` alone cannot be; a bound that indexes is refused below.
        let before: Vec<u8> = b[..i].iter().rev().filter(|c| !c.is_ascii_whitespace()).take(2).copied().collect();
        let address = before.first() == Some(&b'&') && before.get(1) != Some(&b'&');
        plain || compound || address
    })
}

/// A step that is a literal (`1u`, `256u`) or a module-scope constant: its value.
fn constant_step(step: &str, consts: &BTreeMap<String, u64>) -> Option<u64> {
    let lit = step.trim_end_matches('u');
    lit.parse::<u64>().ok().or_else(|| consts.get(step).copied())
}

fn module_constants(stage: Stage, mulhi: Mulhi) -> BTreeMap<String, u64> {
    let src = stage.module_source_with(mulhi);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}.wgsl: {}", stage.name(), e.emit_to_string(&src)));
    module
        .constants
        .iter()
        .filter_map(|(_, c)| match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => Some((c.name.clone()?, v as u64)),
            naga::Expression::Literal(naga::Literal::I32(v)) if v >= 0 => Some((c.name.clone()?, v as u64)),
            _ => None,
        })
        .collect()
}

/// Module-scope variables other invocations may write: workgroup and read-write storage ones.
fn writable_globals(stage: Stage, mulhi: Mulhi) -> Vec<String> {
    let src = stage.module_source_with(mulhi);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}.wgsl: {}", stage.name(), e.emit_to_string(&src)));
    module
        .global_variables
        .iter()
        .filter(|(_, g)| match g.space {
            naga::AddressSpace::WorkGroup => true,
            naga::AddressSpace::Storage { access } => access.contains(naga::StorageAccess::STORE),
            _ => false,
        })
        .filter_map(|(_, g)| g.name.clone())
        .collect()
}

/// What was found in one module: counting, halving and level loops.
#[derive(Default, Debug)]
struct Found {
    counting: usize,
    halving: usize,
    level: usize,
}

/// Checks every loop of one module; panics with the stage, the loop's header and the rule it
/// breaks.
fn check_module(stage: Stage, mulhi: Mulhi) -> Found {
    let name = stage.name();
    let src = source(stage, mulhi);
    let consts = module_constants(stage, mulhi);
    let shared = writable_globals(stage, mulhi);
    let mut found = Found::default();
    assert!(find_word(&src, "while").is_empty(), "{name}.wgsl: `while` is not allowed (use a counted `for`)");
    for at in find_word(&src, "loop") {
        let (_, needles) = LEVEL_LOOPS
            .iter()
            .find(|(s, _)| *s == name)
            .unwrap_or_else(|| panic!("{name}.wgsl: a `loop` statement at byte {at}; prove it terminates and list it in LEVEL_LOOPS"));
        let open = at + src[at..].find('{').unwrap();
        let body = &src[open..matching(&src, open)];
        for n in *needles {
            assert!(body.contains(n), "{name}.wgsl: the level loop no longer contains `{n}`, on which its termination rests");
        }
        found.level += 1;
    }
    for at in find_word(&src, "for") {
        let open = at + src[at..].find('(').unwrap();
        let close = matching(&src, open);
        let header = &src[open + 1..close - 1];
        let parts: Vec<&str> = header.split(';').map(str::trim).collect();
        assert_eq!(parts.len(), 3, "{name}.wgsl: `for ({header})` is not `init; condition; update`");
        let var = parts[0]
            .strip_prefix("var ")
            .and_then(|r| r.split('=').next())
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name}.wgsl: `for ({header})` does not declare its counter with `var`"));
        let body_open = close + src[close..].find('{').unwrap();
        let body = &src[body_open..matching(&src, body_open)];
        assert!(!assigns(body, var), "{name}.wgsl: the body of `for ({header})` assigns its counter `{var}`");
        let (cond, update) = (parts[1], parts[2].replace(' ', ""));
        if let Some(bound) = cond.strip_prefix(&format!("{var} < ")) {
            let step = update
                .strip_prefix(&format!("{var}={var}+"))
                .unwrap_or_else(|| panic!("{name}.wgsl: `for ({header})` counts up but its update is not `{var} = {var} + step`"));
            assert!(!bound.contains('['), "{name}.wgsl: the bound of `for ({header})` indexes memory; read it into a `let` first");
            for id in idents(bound) {
                assert!(!assigns(body, id), "{name}.wgsl: the body of `for ({header})` assigns `{id}`, which its bound reads");
                // Workgroup and storage variables can change under the loop (other invocations
                // write them); uniforms cannot.
                assert!(!shared.iter().any(|g| g == id), "{name}.wgsl: the bound of `for ({header})` reads `{id}`, which other invocations may write");
            }
            let ok = match constant_step(step, &consts) {
                Some(v) => (1..=MAX_STEP).contains(&v),
                None if step == "WG" => true,
                None => RUNTIME_STEPS.iter().any(|(s, t, _)| *s == name && t.replace(' ', "") == step),
            };
            assert!(ok, "{name}.wgsl: the step `{step}` of `for ({header})` is not a constant in 1..={MAX_STEP}, `WG`, or a listed run-time step");
            found.counting += 1;
        } else if cond == format!("{var} > 0u") {
            assert!(
                update == format!("{var}={var}>>1u") || update == format!("{var}={var}/2u"),
                "{name}.wgsl: `for ({header})` counts down to 0 but does not halve its counter"
            );
            found.halving += 1;
        } else {
            panic!("{name}.wgsl: `for ({header})` is neither `{var} < bound` nor `{var} > 0u` (halving)");
        }
    }
    found
}

#[test]
fn every_loop_of_every_stage_terminates() {
    let mut total = Found::default();
    for mulhi in Mulhi::ALL {
        for stage in Stage::ALL {
            let f = check_module(stage, mulhi);
            total.counting += f.counting;
            total.halving += f.halving;
            total.level += f.level;
        }
    }
    // The proof found the loops it is about (Philox's rounds are in every module, the GEMMs'
    // k-loops, the reductions' halving loops and `bound`'s level loop).
    assert!(total.counting > 200 && total.halving >= 8 && total.level == 2, "{total:?}");
}

#[test]
fn runtime_steps_hold_what_they_claim() {
    // `lanes` in dac: a select of two constants in 1..=256.
    let src = source(Stage::Dac, Mulhi::Halves);
    assert!(src.contains("let lanes = select(DAC_WG, DAC_LANES, L.dac_short != 0u);"));
    let c = module_constants(Stage::Dac, Mulhi::Halves);
    for k in ["DAC_WG", "DAC_LANES"] {
        assert!((1..=256).contains(&c[k]), "{k} = {}", c[k]);
    }
    // `nwg.x * nwg.y` in bound: the plan's grid is capped at BOUND_GROUPS workgroups.
    assert!((1..=MAX_STEP as u32).contains(&aimc::engine::plan::BOUND_GROUPS));
    let plan = include_str!("../../src/engine/plan/recording.rs");
    assert!(plan.contains("grid(units.min(BOUND_GROUPS as u64), 1)"), "bound's grid is no longer capped at BOUND_GROUPS");
}

#[test]
fn the_checker_refuses_what_it_must() {
    // The rules themselves, on small cases: a body that moves its counter or its bound, and a
    // step that is neither constant nor listed.
    assert!(assigns("{ i = i + 1u; }", "i"));
    assert!(assigns("{ n += 2u; }", "n"));
    assert!(assigns("{ f(&n); }", "n"));
    assert!(!assigns("{ if (i == 0u) { x = 1u; } }", "i"));
    assert!(!assigns("{ a[i] = 0u; b = i; }", "i"));
    assert!(!assigns("{ if (a && i == 0u) {} }", "i"));
    assert_eq!(idents("min(S.top_k, e_n)"), vec!["min", "S", "e_n"]);
    assert_eq!(constant_step("256u", &BTreeMap::new()), Some(256));
    assert_eq!(constant_step("lanes", &BTreeMap::new()), None);
}

/// A run config for the planner checks: PCM, perfect periphery, two trials, one time.
fn run_config() -> aimc::engine::plan::RunConfig {
    aimc::engine::plan::RunConfig {
        device: aimc::device::DeviceModel::pcm(),
        periphery: aimc::crossbar::Periphery::perfect(),
        gdc: aimc::crossbar::Gdc::Off,
        key: [1, 2],
        trials: 2,
        first_trial: 0,
        times: vec![3600.0],
        max_chunk: 2,
        layer_noise: Vec::new(),
        reads_per_programming: 1,
    }
}

#[test]
fn planner_keeps_sizes_in_the_counter_range() {
    use aimc::crossbar::{MappedMatrix, TileShape};
    use aimc::engine::plan::run_device_state;
    let mut be = aimc::engine::cpu::CpuBackend::new(2, 64);
    let cfg = run_config();
    // 2^20 outputs: past the output field of the RNG counters (and far inside 2^31).
    let n_out = 1u32 << 20;
    let m = MappedMatrix::new(&vec![0.5; n_out as usize], n_out, 1, TileShape { max_in: 512, max_out: 512 }, 0.0);
    let err = run_device_state(&mut be, &m, &cfg).expect_err("a layer of 2^20 outputs must be refused").to_string();
    assert!(err.contains("2^20 outputs"), "{err}");
    // A tile wider than MAX_TILE_IN: the DAC's and the GEMMs' per-tile loops stop there.
    let wide = aimc::crossbar::MAX_TILE_IN + 1;
    let m = MappedMatrix::new(&vec![0.5; wide as usize], 1, wide, TileShape { max_in: wide, max_out: 512 }, 0.0);
    let err = run_device_state(&mut be, &m, &cfg).expect_err("a tile wider than MAX_TILE_IN must be refused").to_string();
    assert!(err.contains("tile.max_in"), "{err}");
    // The largest accepted shapes stay far below 2^31, so no counting loop's bound is near the
    // wrap: weights per trial <= 2^32 are refused above that, outputs < 2^20, tile inputs <= 2048.
    assert!(u64::from(aimc::crossbar::MAX_TILE_IN) + MAX_STEP < 1 << 31);
}
