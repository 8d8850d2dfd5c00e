//! The stage table: one line per GPU stage, its WGSL file and its CPU twin share one name
//! (shaders/NAME.wgsl, src/engine/cpu/NAME.rs, `Stage::NAME`). Each stage's module is the
//! common WGSL files followed by the stage file.

/// WGSL files with no entry points, prepended to every stage (after the `mulhi32` variant).
pub const COMMON: [(&str, &str); 3] = [
    ("common/layout.wgsl", include_str!("../../shaders/common/layout.wgsl")),
    ("common/philox.wgsl", include_str!("../../shaders/common/philox.wgsl")),
    ("common/device.wgsl", include_str!("../../shaders/common/device.wgsl")),
];

/// How Philox's 32 x 32 -> 64 high word is computed in WGSL; both variants give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mulhi {
    /// A 64-bit product (needs the adapter's `SHADER_INT64`).
    U64,
    /// Built from 16-bit halves (any adapter).
    Halves,
}

impl Mulhi {
    pub const ALL: [Mulhi; 2] = [Mulhi::U64, Mulhi::Halves];

    /// The WGSL file that defines `mulhi32` for this variant.
    pub fn source(self) -> (&'static str, &'static str) {
        match self {
            Mulhi::U64 => ("common/mulhi_u64.wgsl", include_str!("../../shaders/common/mulhi_u64.wgsl")),
            Mulhi::Halves => ("common/mulhi_halves.wgsl", include_str!("../../shaders/common/mulhi_halves.wgsl")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mulhi::U64 => "u64 mulhi",
            Mulhi::Halves => "16-bit-halves mulhi",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Program,
    Drift,
    Gdc,
    Dac,
    Mvm,
    Bound,
    Combine,
    Accuracy,
    WeightError,
    ProgramMvm,
    Rng,
    PeakPhilox,
    PeakFma,
    FeatureMap,
    KernelError,
    AttentionKv,
    AttentionOut,
    Im2col,
    Pool,
    MvmNarrow,
}

impl Stage {
    pub const ALL: [Stage; 20] = [
        Stage::Program,
        Stage::Drift,
        Stage::Gdc,
        Stage::Dac,
        Stage::Mvm,
        Stage::Bound,
        Stage::Combine,
        Stage::Accuracy,
        Stage::WeightError,
        Stage::ProgramMvm,
        Stage::Rng,
        Stage::PeakPhilox,
        Stage::PeakFma,
        Stage::FeatureMap,
        Stage::KernelError,
        Stage::AttentionKv,
        Stage::AttentionOut,
        Stage::Im2col,
        Stage::Pool,
        Stage::MvmNarrow,
    ];

    /// The stage's name: its WGSL file, entry point and CPU twin module.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Program => "program",
            Stage::Drift => "drift",
            Stage::Gdc => "gdc",
            Stage::Dac => "dac",
            Stage::Mvm => "mvm",
            Stage::Bound => "bound",
            Stage::Combine => "combine",
            Stage::Accuracy => "accuracy",
            Stage::WeightError => "weight_error",
            Stage::ProgramMvm => "program_mvm",
            Stage::Rng => "rng",
            Stage::PeakPhilox => "peak_philox",
            Stage::PeakFma => "peak_fma",
            Stage::FeatureMap => "feature_map",
            Stage::KernelError => "kernel_error",
            Stage::AttentionKv => "attention_kv",
            Stage::AttentionOut => "attention_out",
            Stage::Im2col => "im2col",
            Stage::Pool => "pool",
            Stage::MvmNarrow => "mvm_narrow",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Stage::Program => include_str!("../../shaders/program.wgsl"),
            Stage::Drift => include_str!("../../shaders/drift.wgsl"),
            Stage::Gdc => include_str!("../../shaders/gdc.wgsl"),
            Stage::Dac => include_str!("../../shaders/dac.wgsl"),
            // The two block shapes of the noisy GEMM share their bindings, loads and epilogue.
            Stage::Mvm => concat!(include_str!("../../shaders/common/mvm_block.wgsl"), include_str!("../../shaders/mvm.wgsl")),
            Stage::MvmNarrow => concat!(include_str!("../../shaders/common/mvm_block.wgsl"), include_str!("../../shaders/mvm_narrow.wgsl")),
            Stage::Bound => include_str!("../../shaders/bound.wgsl"),
            Stage::Combine => include_str!("../../shaders/combine.wgsl"),
            Stage::Accuracy => include_str!("../../shaders/accuracy.wgsl"),
            Stage::WeightError => include_str!("../../shaders/weight_error.wgsl"),
            Stage::ProgramMvm => include_str!("../../shaders/program_mvm.wgsl"),
            Stage::Rng => include_str!("../../shaders/rng.wgsl"),
            Stage::PeakPhilox => include_str!("../../shaders/peak_philox.wgsl"),
            Stage::PeakFma => include_str!("../../shaders/peak_fma.wgsl"),
            Stage::FeatureMap => include_str!("../../shaders/feature_map.wgsl"),
            Stage::KernelError => include_str!("../../shaders/kernel_error.wgsl"),
            Stage::AttentionKv => include_str!("../../shaders/attention_kv.wgsl"),
            Stage::AttentionOut => include_str!("../../shaders/attention_out.wgsl"),
            Stage::Im2col => include_str!("../../shaders/im2col.wgsl"),
            Stage::Pool => include_str!("../../shaders/pool.wgsl"),
        }
    }

    /// Whether the workgroup size is the pipeline-overridable constant `WG` (1-D stages whose
    /// results cannot depend on it; tests vary it). The others have a fixed shape.
    pub fn has_wg_override(self) -> bool {
        matches!(
            self,
            Stage::Program
                | Stage::Gdc
                | Stage::Combine
                | Stage::Accuracy
                | Stage::ProgramMvm
                | Stage::Rng
                | Stage::PeakPhilox
                | Stage::PeakFma
                | Stage::FeatureMap
                | Stage::Im2col
                | Stage::Pool
        )
    }

    /// The full WGSL module with the portable `mulhi32` (16-bit halves).
    pub fn module_source(self) -> String {
        self.module_source_with(Mulhi::Halves)
    }

    /// The full WGSL module: the `mulhi32` variant, the common files, then the stage file.
    pub fn module_source_with(self, mulhi: Mulhi) -> String {
        let mut s = String::new();
        for (name, src) in std::iter::once(mulhi.source()).chain(COMMON) {
            s.push_str(&format!("// ---- {name}\n"));
            s.push_str(src);
            s.push('\n');
        }
        s.push_str(&format!("// ---- {}.wgsl\n", self.name()));
        s.push_str(self.source());
        s
    }
}

/// Elements per partial sum in `drift` and `weight_error` (their fixed workgroup size).
pub const CHUNK: u32 = 256;
/// `mvm` block: samples per workgroup (dispatch y).
pub const MVM_BM: u32 = 128;
/// `mvm` block: outputs per workgroup (dispatch x).
pub const MVM_BN: u32 = 128;
/// Layers whose tallest tile has at most this many outputs (one `mvm_narrow` block) may run
/// `mvm_narrow` (see `plan::mvm_block`). On lavapipe a 64-output layer over 450 samples with 256
/// inputs ran faster in `mvm` (two narrow blocks each stage the samples again, and BK = 4 doubles
/// the barriers); a 10-output head ran faster narrow.
pub const MVM_NARROW_ROWS: u32 = 32;
/// `mvm_narrow` block: samples per workgroup (dispatch y).
pub const MVM_NARROW_BM: u32 = 256;
/// `mvm_narrow` block: outputs per workgroup (dispatch x).
pub const MVM_NARROW_BN: u32 = 32;
/// `dac` gives one invocation a whole vector when every input slice is at most this long (a
/// convolution's patches, 9 to 72 inputs in the digits CNN; small Linear layers); longer slices
/// get a workgroup each. On lavapipe a workgroup per vector cost ~4 µs, so the digits CNN's `dac`
/// took 8.0 s against 0.39 s with this threshold (and 6.8 s with 32, which left its 72-input
/// patches to workgroups); on a GPU a thread reading 128 contiguous floats is still cheap.
pub const DAC_SERIAL_COLS: u32 = 128;
/// `dac` workgroup size (both modes).
pub const DAC_WG: u32 = 64;
/// `bound` workgroup size.
pub const BOUND_WG: u32 = 64;
