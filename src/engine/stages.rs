//! The stage table: one line per GPU stage, its WGSL file and its CPU twin share one name
//! (shaders/NAME.wgsl, src/engine/cpu/NAME.rs, `Stage::NAME`). Each stage's module is the
//! common WGSL files followed by the stage file.

/// WGSL files with no entry points, prepended to every stage.
pub const COMMON: [(&str, &str); 3] = [
    ("common/layout.wgsl", include_str!("../../shaders/common/layout.wgsl")),
    ("common/philox.wgsl", include_str!("../../shaders/common/philox.wgsl")),
    ("common/device.wgsl", include_str!("../../shaders/common/device.wgsl")),
];

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
}

impl Stage {
    pub const ALL: [Stage; 13] = [
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
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Stage::Program => include_str!("../../shaders/program.wgsl"),
            Stage::Drift => include_str!("../../shaders/drift.wgsl"),
            Stage::Gdc => include_str!("../../shaders/gdc.wgsl"),
            Stage::Dac => include_str!("../../shaders/dac.wgsl"),
            Stage::Mvm => include_str!("../../shaders/mvm.wgsl"),
            Stage::Bound => include_str!("../../shaders/bound.wgsl"),
            Stage::Combine => include_str!("../../shaders/combine.wgsl"),
            Stage::Accuracy => include_str!("../../shaders/accuracy.wgsl"),
            Stage::WeightError => include_str!("../../shaders/weight_error.wgsl"),
            Stage::ProgramMvm => include_str!("../../shaders/program_mvm.wgsl"),
            Stage::Rng => include_str!("../../shaders/rng.wgsl"),
            Stage::PeakPhilox => include_str!("../../shaders/peak_philox.wgsl"),
            Stage::PeakFma => include_str!("../../shaders/peak_fma.wgsl"),
        }
    }

    /// Whether the workgroup size is the pipeline-overridable constant `WG` (1-D stages whose
    /// results cannot depend on it; tests vary it). The others have a fixed shape.
    pub fn has_wg_override(self) -> bool {
        matches!(
            self,
            Stage::Program | Stage::Gdc | Stage::Dac | Stage::Combine | Stage::Accuracy | Stage::ProgramMvm | Stage::Rng | Stage::PeakPhilox | Stage::PeakFma
        )
    }

    /// The full WGSL module: common files, then the stage file.
    pub fn module_source(self) -> String {
        let mut s = String::new();
        for (name, src) in COMMON {
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
/// `mvm` block: outputs and samples per workgroup.
pub const MVM_BLOCK: u32 = 64;
/// `bound` workgroup size.
pub const BOUND_WG: u32 = 64;
