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

/// The stage table, one line per stage:
///
/// `Variant name [WGSL files before shaders/NAME.wgsl] wg-overridable;`
///
/// The name is the stage's WGSL file (shaders/NAME.wgsl, always its last file), its entry point,
/// its CPU twin's module and function (`engine::cpu::NAME::NAME`, declared from this table, so a
/// missing twin file does not compile) and its profile label. The last column says whether the
/// workgroup size is the pipeline-overridable constant `WG` (1-D stages whose results cannot
/// depend on it; tests vary it); the other stages have a fixed shape.
///
/// The table is handed to a macro (`$then`), which is how both this file (the enum and its
/// methods) and `engine::cpu` (the twin modules) are generated from it. Adding a stage: a shader,
/// a twin file, a line here, and its arm in `CpuBackend::dispatch` (the match is exhaustive).
macro_rules! stage_table {
    ($then:ident) => {
        $then! {
            Program      program       []                          true;
            Drift        drift         []                          false;
            Gdc          gdc           []                          true;
            Dac          dac           []                          false;
            // The two block shapes of the noisy GEMM share their bindings, loads and epilogue.
            Mvm          mvm           ["common/mvm_block.wgsl"]   false;
            Bound        bound         []                          false;
            Combine      combine       []                          true;
            Accuracy     accuracy      ["common/argmax.wgsl"]      true;
            // Per test row, the chunk's trials that classify it right (`row_counts`).
            RowCorrect   row_correct   ["common/argmax.wgsl"]      true;
            WeightError  weight_error  []                          false;
            ProgramMvm   program_mvm   []                          true;
            Rng          rng           []                          true;
            PeakPhilox   peak_philox   []                          true;
            PeakFma      peak_fma      []                          true;
            PeakExp      peak_exp      []                          true;
            FeatureMap   feature_map   []                          true;
            KernelError  kernel_error  []                          false;
            AttentionKv  attention_kv  []                          false;
            AttentionOut attention_out []                          false;
            Im2col       im2col        []                          true;
            Pool         pool          []                          true;
            MvmNarrow    mvm_narrow    ["common/mvm_block.wgsl"]   false;
            // The full periphery path's GEMM: the MVM with its IR-drop and weight-noise sums.
            MvmFull      mvm_full      ["common/mvm_block.wgsl"]   false;
            // The transformer's digital stages (engine::plan::transformer).
            Embed            embed             []                      true;
            Layernorm        layernorm         []                      true;
            Residual         residual          []                      true;
            AttentionSoftmax attention_softmax []                      false;
            RowNorms         row_norms         []                      true;
            LinearKv         linear_kv         []                      true;
            LinearOut        linear_out        []                      true;
            SeqPool          seq_pool          []                      true;
            MoeGate          moe_gate          []                      true;
            MoeCombine       moe_combine       []                      true;
            // A causal language model's next-token loss and top-1 hits.
            TokenNll         token_nll         []                      false;
            // Extractive question answering's best answer span against the labelled one.
            AnswerSpan       answer_span       []                      true;
            // A pooled head's outputs per sequence (GLUE's correlation and F1 metrics, row counts).
            HeadOut          head_out          []                      true;
        }
    };
}
pub(crate) use stage_table;

/// Generates `Stage` and its methods from the table.
macro_rules! declare_stages {
    ($($variant:ident $name:ident [$($file:literal),*] $wg:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Stage {
            $($variant,)*
        }

        impl Stage {
            /// Every stage, in table order.
            pub const ALL: [Stage; [$(Stage::$variant),*].len()] = [$(Stage::$variant),*];

            /// The stage's name: its WGSL file, entry point and CPU twin module.
            pub fn name(self) -> &'static str {
                match self {
                    $(Stage::$variant => stringify!($name),)*
                }
            }

            /// The stage's WGSL: the files of its table line, then shaders/NAME.wgsl.
            pub fn source(self) -> &'static str {
                match self {
                    $(Stage::$variant => concat!(
                        $(include_str!(concat!("../../shaders/", $file)),)*
                        include_str!(concat!("../../shaders/", stringify!($name), ".wgsl"))
                    ),)*
                }
            }

            /// Whether the workgroup size is the pipeline-overridable constant `WG` (1-D stages
            /// whose results cannot depend on it; tests vary it). The others have a fixed shape.
            pub fn has_wg_override(self) -> bool {
                match self {
                    $(Stage::$variant => $wg,)*
                }
            }
        }
    };
}
stage_table!(declare_stages);

impl Stage {
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
/// `mvm_full` block: samples per workgroup (dispatch y).
pub const MVM_FULL_BM: u32 = 64;
/// `mvm_full` block: outputs per workgroup (dispatch x).
pub const MVM_FULL_BN: u32 = 64;
/// The smallest sample block of the GEMM stages (`mvm_full`'s): a dispatch holds MAX_GROUPS of
/// them along y, which bounds the MVMs per trial of one layer.
pub const MVM_MIN_BM: u32 = MVM_FULL_BM;
const _: () = assert!(MVM_MIN_BM <= MVM_BM && MVM_MIN_BM <= MVM_NARROW_BM);
/// `mvm_narrow` block: samples per workgroup (dispatch y).
pub const MVM_NARROW_BM: u32 = 256;
/// `mvm_narrow` block: outputs per workgroup (dispatch x).
pub const MVM_NARROW_BN: u32 = 32;
/// `dac` gives DAC_LANES invocations a vector when every input slice is at most this long (a
/// convolution's patches, 9 to 72 inputs in the digits CNN; small Linear layers, the 256-wide
/// hidden layers of the MLP case); longer slices get a workgroup each. On lavapipe a workgroup per
/// vector cost ~4 µs, so the digits CNN's `dac` took 8.0 s against 0.39 s with short slices shared
/// out (one invocation per vector then).
pub const DAC_SHORT_COLS: u32 = 256;
/// Bound management's level-1 redo runs as a second pass of the tiled GEMM when at least
/// 1 / REDO_GEMM_SHARE of a layer's vectors saturated at level 0, else in `bound`. The GEMM pass
/// costs the whole layer's MVM whatever it redoes; `bound` redid a vector at about a tenth of
/// `mvm`'s rate per vector on an H200 (the BERT-sized case, BENCHMARKS.md), so the two break even
/// near a tenth of the vectors.
pub const REDO_GEMM_SHARE: u32 = 8;
/// `bound`: samples per unit (the vectors of one trial and tile redone together).
pub const BOUND_VB: u32 = 8;
/// `attention_softmax`: query tokens per workgroup (one workgroup per block of a head's queries).
pub const SOFTMAX_SQ: u32 = 64;
/// Invocations per vector of `dac`'s short-slice mode (DAC_WG / DAC_LANES vectors per workgroup).
pub const DAC_LANES: u32 = 8;
/// `dac` workgroup size (both modes).
pub const DAC_WG: u32 = 64;
/// `attention_kv` tile: features per workgroup (dispatch: trials · heads · feature blocks · column blocks).
pub const KV_BF: u32 = 64;
/// `attention_kv` tile: V columns per workgroup (z, column dv, rides along in column block 0).
pub const KV_BC: u32 = 64;
/// `attention_out` pass: V columns per pass of a workgroup (one workgroup per block of ATTN_BLOCK tokens).
pub const OUT_BC: u32 = 64;
/// `token_nll`: positions per partial sum of a sequence's next-token loss (one workgroup and one
/// slot each; a trial's loss adds the partial sums in f64).
pub const NLL_BLOCK: u32 = 64;
/// `token_nll`: words per slot, the block's summed loss and its first-best hits (an f32, exact:
/// at most `NLL_BLOCK`), so a sequence's hits are known as its loss is.
pub const NLL_SLOT_WORDS: u32 = 2;
/// `token_nll` workgroup size: the invocations that reduce one row of logits together (a power of
/// two; one workgroup per (trial, sequence, block of `NLL_BLOCK` positions)), or, for a
/// vocabulary of at most `NLL_WG` tokens, the blocks one workgroup runs, one per invocation.
pub const NLL_WG: u32 = 256;

/// `token_nll`'s workgroups for `items` (trial, sequence, block) and a vocabulary of `vocab`: one
/// per item, or one per `NLL_WG` items for a small vocabulary.
pub fn token_nll_groups(items: u64, vocab: u32) -> u64 {
    if vocab <= NLL_WG {
        items.div_ceil(NLL_WG as u64)
    } else {
        items
    }
}
/// `answer_span`: words per slot of one (trial, sequence): the predicted span's overlap with the
/// labelled answer it matches best, its own length and that answer's length, in tokens
/// (integers, so the F1 the host forms from them is the same on every backend); then the
/// predicted span's start and end token and its score (start + end logit, f32 bits), and the
/// null score (position 0's start + end logit, f32 bits), which SQuAD's official metrics read
/// (the text the span covers; a question's best window; SQuAD 2.0's "no answer").
pub const SPAN_SLOT_WORDS: u32 = 7;
/// Tokens per causal block of `attention_kv` / `attention_out` (the prefix slots of causal linear
/// attention; the shaders' ATTN_BLOCK).
pub const ATTN_BLOCK: usize = 64;
