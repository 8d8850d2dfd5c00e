//! Mapping weights onto crossbar tiles and the per-MVM periphery settings
//! (noise-models.md §2, §6, §7; aihwkit `MappingParameter`, `IOParameters`, `GlobalDriftCompensation`).
//!
//! A weight matrix W (out × in, PyTorch layout) is split into ceil(in/R) × ceil(out/C) tiles with
//! balanced sizes (`base + (i < extra)`); each tile is normalised by its own max|W|/ω, so one
//! differential-pair conductance scale s = g_max / max|W_norm| applies per tile, and the digital
//! output scale max|W|/ω is applied after the ADC. Partial sums over input splits add digitally.

use serde::{Deserialize, Serialize};

/// Size of split `i` of `n` items into `parts` balanced parts: `base + (i < extra)`.
pub fn split_len(n: u32, parts: u32, i: u32) -> u32 {
    n / parts + u32::from(i < n % parts)
}

/// Start of split `i`.
pub fn split_start(n: u32, parts: u32, i: u32) -> u32 {
    i * (n / parts) + i.min(n % parts)
}

/// Which split holds item `j` (the inverse of [`split_start`]); mirrored in WGSL `split_index`.
pub fn split_index(n: u32, parts: u32, j: u32) -> u32 {
    let base = n / parts;
    let extra = n % parts;
    let big = extra * (base + 1);
    if j < big {
        j / (base + 1)
    } else {
        extra + (j - big) / base
    }
}

/// Crossbar geometry: the largest tile, inputs × outputs (aihwkit's default is 512 × 512).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileShape {
    pub max_in: u32,
    pub max_out: u32,
}

impl Default for TileShape {
    fn default() -> Self {
        TileShape { max_in: 512, max_out: 512 }
    }
}

/// Largest tile input count the `bound` stage keeps in workgroup memory.
pub const MAX_TILE_IN: u32 = 2048;

/// One crossbar tile of a mapped matrix: a block of `rows` outputs x `cols` inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tile {
    pub row_start: u32,
    pub rows: u32,
    pub col_start: u32,
    pub cols: u32,
    /// Digital output scale: the tile's max|W| / ω (with per-column scales, the largest of its
    /// columns' scales; each column's own is in [`MappedMatrix::rows`]).
    pub scale: f32,
    /// max |W_norm| over the tile (ω, or 0 for an all-zero tile).
    pub wmax_norm: f32,
    /// mean |W_norm| over the tile: the exact-reference GDC baseline.
    pub mean_abs_norm: f32,
    /// min and max of W_norm over the tile (signed): the range a one-device mapping
    /// (`device::Programming::Single`) puts onto [g_min, g_max].
    pub w_lo: f32,
    pub w_hi: f32,
    /// Multipliers of the device's programming noise, drift exponent and read noise on this tile
    /// ([1, 1, 1]: the device model as it is; a 3D tier's own variability otherwise).
    pub noise: [f32; 3],
    /// The tile's input range r (aihwkit's `pre_post.input_range`, learned in hardware-aware
    /// training): inputs are clipped to ±r and divided by r before noise management and the DAC,
    /// and the outputs multiplied by r. 0: none (every tile of a model without ranges).
    pub input_range: f32,
}

/// How weights are scaled into a tile (aihwkit `MappingParameter`): ω = 0 keeps the raw weights;
/// ω > 0 rescales each tile, or with `columnwise` each output column of a tile, to max|W| = ω.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scaling {
    pub omega: f32,
    pub columnwise: bool,
}

impl Scaling {
    /// One factor per tile (or none with ω = 0).
    pub fn tile(omega: f32) -> Scaling {
        Scaling { omega, columnwise: false }
    }
}

/// ω alone: one factor per tile.
impl From<f32> for Scaling {
    fn from(omega: f32) -> Scaling {
        Scaling::tile(omega)
    }
}

impl From<&Periphery> for Scaling {
    fn from(p: &Periphery) -> Scaling {
        Scaling { omega: p.weight_scaling_omega as f32, columnwise: p.weight_scaling_columnwise }
    }
}

/// A weight matrix mapped onto tiles: normalised weights and one [`Tile`] per tile
/// (index `tile_out * tiles_in + tile_in`).
#[derive(Clone, Debug)]
pub struct MappedMatrix {
    pub n_in: u32,
    pub n_out: u32,
    pub tiles_in: u32,
    pub tiles_out: u32,
    /// W / (tile max|W| / ω), row-major out × in.
    pub w_norm: Vec<f32>,
    pub tiles: Vec<Tile>,
    /// Every tile's output columns as one-row tiles (their own scale, max and mean |W_norm|):
    /// tile k's row r at `k * max_rows() + r`; slots past a tile's last row are empty (rows 0).
    pub rows: Vec<Tile>,
    /// Original weights, for error statistics.
    pub w: Vec<f32>,
    /// max|W| over the whole matrix.
    pub wmax: f32,
}

impl MappedMatrix {
    pub fn new(w: &[f32], n_out: u32, n_in: u32, shape: TileShape, scaling: impl Into<Scaling>) -> MappedMatrix {
        let scaling = scaling.into();
        assert_eq!(w.len(), (n_out * n_in) as usize);
        let tiles_in = n_in.div_ceil(shape.max_in);
        let tiles_out = n_out.div_ceil(shape.max_out);
        let max_rows = n_out.div_ceil(tiles_out.max(1));
        let omega = scaling.omega;
        // ω = 0 keeps the raw weights (aihwkit's default); an all-zero tile or column keeps scale 1
        // and maps to zero conductance.
        let scale_of = |m: f32| if m > 0.0 && omega > 0.0 { m / omega } else { 1.0 };
        let mut w_norm = vec![0.0f32; w.len()];
        let mut tiles = Vec::new();
        let mut rows = Vec::new();
        for to in 0..tiles_out {
            for ti in 0..tiles_in {
                let (r0, nr) = (split_start(n_out, tiles_out, to), split_len(n_out, tiles_out, to));
                let (c0, nc) = (split_start(n_in, tiles_in, ti), split_len(n_in, tiles_in, ti));
                let row_max = |r: u32| (c0..c0 + nc).fold(0.0f32, |m, c| m.max(w[(r * n_in + c) as usize].abs()));
                let tile_scale = scale_of((r0..r0 + nr).map(row_max).fold(0.0, f32::max));
                let mut tile_rows = Vec::with_capacity(max_rows as usize);
                let mut tile_sum_abs = 0.0f64;
                for r in r0..r0 + nr {
                    let scale = if scaling.columnwise { scale_of(row_max(r)) } else { tile_scale };
                    let (mut sum_abs, mut wmax_norm, mut w_lo, mut w_hi) = (0.0f64, 0.0f32, f32::INFINITY, f32::NEG_INFINITY);
                    for c in c0..c0 + nc {
                        let i = (r * n_in + c) as usize;
                        w_norm[i] = w[i] / scale;
                        sum_abs += w_norm[i].abs() as f64;
                        wmax_norm = wmax_norm.max(w_norm[i].abs());
                        (w_lo, w_hi) = (w_lo.min(w_norm[i]), w_hi.max(w_norm[i]));
                    }
                    tile_sum_abs += sum_abs;
                    tile_rows.push(Tile {
                        row_start: r,
                        rows: 1,
                        col_start: c0,
                        cols: nc,
                        scale,
                        wmax_norm,
                        mean_abs_norm: (sum_abs / nc as f64) as f32,
                        w_lo,
                        w_hi,
                        noise: [1.0; 3],
                        input_range: 0.0,
                    });
                }
                tiles.push(Tile {
                    row_start: r0,
                    rows: nr,
                    col_start: c0,
                    cols: nc,
                    scale: tile_rows.iter().map(|t| t.scale).fold(0.0, f32::max),
                    wmax_norm: tile_rows.iter().map(|t| t.wmax_norm).fold(0.0, f32::max),
                    mean_abs_norm: (tile_sum_abs / (nr * nc) as f64) as f32,
                    w_lo: tile_rows.iter().map(|t| t.w_lo).fold(f32::INFINITY, f32::min),
                    w_hi: tile_rows.iter().map(|t| t.w_hi).fold(f32::NEG_INFINITY, f32::max),
                    noise: [1.0; 3],
                    input_range: 0.0,
                });
                tile_rows.resize(max_rows as usize, Tile { row_start: r0 + nr, col_start: c0, cols: nc, scale: 1.0, ..Tile::default() });
                rows.extend(tile_rows);
            }
        }
        let wmax = w.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
        MappedMatrix { n_in, n_out, tiles_in, tiles_out, w_norm, tiles, rows, w: w.to_vec(), wmax }
    }

    /// Sets every tile's noise multipliers (and its rows') from the tile: a 3D architecture's tier
    /// variability, tile by tile.
    pub fn set_tile_noise(&mut self, f: impl Fn(&Tile) -> [f32; 3]) {
        let stride = self.max_rows() as usize;
        for (k, t) in self.tiles.iter_mut().enumerate() {
            t.noise = f(t);
            for r in &mut self.rows[k * stride..(k + 1) * stride] {
                r.noise = t.noise;
            }
        }
    }

    /// Sets the tiles' input ranges (see [`Tile::input_range`]): one value for every tile, or one
    /// per input tile (`tiles_in` values, in input order; every output tile of an input slice
    /// shares it, as the slice is quantised once). `what` names the values in the message.
    pub fn set_input_ranges(&mut self, ranges: &[f32], what: &str) -> Result<(), String> {
        if ranges.len() != 1 && ranges.len() != self.tiles_in as usize {
            return Err(format!(
                "{what} has {} values but the layer's {} inputs lie on {} tile(s) along the inputs: give one range for the layer or one per input tile",
                ranges.len(),
                self.n_in,
                self.tiles_in
            ));
        }
        if let Some((i, r)) = ranges.iter().enumerate().find(|(_, r)| !(r.is_finite() && **r > 0.0)) {
            return Err(format!("{what}[{i}] = {r}: an input range must be a finite number > 0 (inputs are clipped to ±range)"));
        }
        let stride = self.max_rows() as usize;
        let tin = self.tiles_in as usize;
        for (k, t) in self.tiles.iter_mut().enumerate() {
            t.input_range = ranges[if ranges.len() == 1 { 0 } else { k % tin }];
            for r in &mut self.rows[k * stride..(k + 1) * stride] {
                r.input_range = t.input_range;
            }
        }
        Ok(())
    }

    /// Rows of the tallest tile: the stride of [`MappedMatrix::rows`].
    pub fn max_rows(&self) -> u32 {
        self.n_out.div_ceil(self.tiles_out.max(1))
    }

    pub fn n_tiles(&self) -> u32 {
        self.tiles_in * self.tiles_out
    }

    pub fn len(&self) -> usize {
        self.w.len()
    }

    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }
}

/// Noise management (input scaling before the DAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseManagement {
    None,
    AbsMax,
    /// aihwkit's `CONSTANT`: every input divided by `nm_thres` (1 when it is 0).
    Constant,
}

impl NoiseManagement {
    /// The name the configuration files use.
    pub fn name(self) -> &'static str {
        match self {
            NoiseManagement::None => "none",
            NoiseManagement::AbsMax => "abs_max",
            NoiseManagement::Constant => "constant",
        }
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Bound management (what happens when the ADC saturates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundManagement {
    None,
    Iterative,
}

/// Per-read weight noise type (as its equivalent output noise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightNoiseType {
    AdditiveConstant,
    PcmRead,
}

/// Drift compensation (noise-models §6): one factor per tile (aihwkit
/// `GlobalDriftCompensation`), or one per output column of each tile (aihwkit
/// `PerColumnDriftCompensation`: the readout's mean |output| per column instead of over the tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gdc {
    Off,
    /// α = readout right after programming / readout(t), both through the noisy forward path.
    Readout,
    /// α = mean|W_ref| (unprogrammed, no IO noise) / readout(t).
    ExactReference,
    /// As `readout`, one α per output column of each tile.
    ReadoutPerColumn,
    /// As `exact_reference`, one α per output column of each tile.
    ExactReferencePerColumn,
}

impl Gdc {
    /// The baseline: 0 off, 1 noisy readout after programming, 2 exact reference.
    pub fn mode(self) -> u32 {
        match self {
            Gdc::Off => 0,
            Gdc::Readout | Gdc::ReadoutPerColumn => 1,
            Gdc::ExactReference | Gdc::ExactReferencePerColumn => 2,
        }
    }

    /// Whether every output column of a tile gets its own factor.
    pub fn per_column(self) -> bool {
        matches!(self, Gdc::ReadoutPerColumn | Gdc::ExactReferencePerColumn)
    }
}

/// Periphery settings of one MVM (aihwkit `IOParameters` defaults). Bits of 0 mean no quantisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Periphery {
    pub inp_bound: f64,
    pub inp_res_bits: u32,
    pub out_bound: f64,
    pub out_res_bits: u32,
    pub out_noise: f64,
    /// Gaussian noise added to every input after the DAC (aihwkit `IOParameters.inp_noise`,
    /// default 0), in the DAC's units (the scaled input lies in ±inp_bound): rpucuda's
    /// `prepareInput` adds `inp_noise · N(0, 1)` after quantising and clipping, a fresh draw per
    /// input line, tile, MVM and bound-management pass; the MVM and its IR drop and weight noise
    /// see the noisy inputs.
    #[serde(skip_serializing_if = "is_zero")]
    pub inp_noise: f64,
    pub noise_management: NoiseManagement,
    /// aihwkit's `IOParameters.nm_thres` (default 0): with abs-max, the input scale saturates at
    /// it (min(max|x|, nm_thres)); with `constant`, it is the scale. With an input range r the
    /// inputs are first divided by r, so the scale in input units is r · nm_thres.
    #[serde(skip_serializing_if = "is_zero")]
    pub nm_thres: f64,
    pub bound_management: BoundManagement,
    /// Iterative bound management stops once the input reduction exceeds this (aihwkit
    /// `IOParameters.max_bm_factor`, default 1000); see [`bm_last_reduction`].
    pub max_bm_factor: f64,
    /// ... or once the reduction exceeds `max_bm_res` / DAC step, i.e. the reduced input would
    /// span fewer than about 1/max_bm_res DAC steps (aihwkit `IOParameters.max_bm_res`, default
    /// 0.25; with the default 7-bit DAC this is the binding limit: last reduction 16).
    pub max_bm_res: f64,
    pub w_noise: f64,
    pub w_noise_type: WeightNoiseType,
    pub ir_drop: f64,
    pub ir_drop_g_ratio: f64,
    /// Weight scaling ω (aihwkit `MappingParameter.weight_scaling_omega`): 0 (the default, as in
    /// aihwkit's `InferenceRPUConfig`) keeps the raw weights in the tile, so the periphery acts on
    /// them as they are; ω > 0 rescales each tile to max|W| = ω, outputs scaled back digitally.
    /// The conductance mapping (max|W| → g_max) does not depend on ω.
    pub weight_scaling_omega: f64,
    /// Per-column digital output scales (aihwkit `MappingParameter.weight_scaling_columnwise`):
    /// with ω > 0, every output column (row of W) of a tile is rescaled to its own max|W| = ω and
    /// scaled back digitally after the ADC, instead of the whole tile by one factor.
    pub weight_scaling_columnwise: bool,
}

impl Default for Periphery {
    fn default() -> Self {
        Periphery {
            inp_bound: 1.0,
            inp_res_bits: 7,
            out_bound: 12.0,
            out_res_bits: 9,
            out_noise: 0.06,
            inp_noise: 0.0,
            noise_management: NoiseManagement::AbsMax,
            nm_thres: 0.0,
            bound_management: BoundManagement::Iterative,
            max_bm_factor: 1000.0,
            max_bm_res: 0.25,
            w_noise: 0.0,
            w_noise_type: WeightNoiseType::AdditiveConstant,
            ir_drop: 0.0,
            ir_drop_g_ratio: 571_428.6,
            weight_scaling_omega: 0.0,
            weight_scaling_columnwise: false,
        }
    }
}

/// Quantisation step of a converter with `bits` bits over [-bound, bound]: 2·bound / (2^bits − 2)
/// (aihwkit: 7 bits give 2/126), 0 when `bits` is 0 (no quantisation).
///
/// Rounded as aihwkit rounds it, so that the converters' grids are the same f32 values: its
/// relative resolution `1 / (2^bits − 2)` is a Python float stored as an f32, and rpucuda's
/// `checkAndSetRes` multiplies it by the f32 range 2·bound in f32. The result can be one ulp off the
/// f32 nearest to 2·bound / (2^bits − 2), and it decides whether the top code counts as saturated:
/// with a 9-bit ADC over ±12, 255 of aihwkit's steps are 12.000001 > 12, so an output rounded to the
/// top code fails bound management's test (`finalizeOutput`: value > bound) and is redone.
pub fn step(bits: u32, bound: f64) -> f64 {
    if bits == 0 {
        0.0
    } else {
        let relative = (1.0 / ((1u64 << bits) as f64 - 2.0)) as f32;
        (relative * (2.0 * bound) as f32) as f64
    }
}

/// The last input reduction iterative bound management tries, as aihwkit computes it
/// (rpucuda `ForwardBackwardPassIOManaged::forwardVector`): the reduction starts at 1, and after
/// each pass the loop stops when the output did not saturate, or the reduction exceeds
/// `max_bm_factor`, or (DAC on, `inp_res` > 0) it exceeds `max_bm_res / inp_res`; otherwise it
/// doubles. `inp_res` is the DAC step relative to the input range, [`step`]`(inp_res_bits,
/// inp_bound)` (aihwkit scales its `inp_res` by 2·inp_bound), 0 with the DAC off. So the result is
/// the smallest power of two strictly greater than L = min(max_bm_factor, max_bm_res / inp_res)
/// (L = max_bm_factor with the DAC off): at the defaults (1000, 0.25) a 7-bit DAC gives 16,
/// 8 bits 32, 6 bits 8, 5 bits 4, 4 bits 2, 3 bits 1 (nothing redone), no DAC 1024.
///
/// The engine's stages take this as `IoParams::bm_max_red` and redo while the reduction is below
/// it, so the shaders and their twins need not know the rule.
pub fn bm_last_reduction(max_bm_factor: f64, max_bm_res: f64, inp_res: f64) -> u32 {
    let mut red: u32 = 1;
    // Bounded: validation keeps max_bm_factor <= 32768, so red stops by 65536; the cap guards
    // settings that never went through validation.
    while red < 1 << 30 {
        let r = red as f64;
        if r > max_bm_factor || (inp_res > 0.0 && r > max_bm_res / inp_res) {
            break;
        }
        red *= 2;
    }
    red
}

/// Checks bound management's two limits, `max_bm_factor` and `max_bm_res`, of the table
/// `section` (`periphery`, `training`): the message names the field and aihwkit's default.
pub fn check_bm_limits(section: &str, max_bm_factor: f64, max_bm_res: f64) -> Result<(), String> {
    if !(0.0..=32768.0).contains(&max_bm_factor) {
        return Err(format!(
            "{section}.max_bm_factor = {max_bm_factor}: must be in 0..=32768 (aihwkit default 1000; bound management stops once the input reduction exceeds it, 0 redoes nothing)"
        ));
    }
    if !(max_bm_res.is_finite() && max_bm_res > 0.0) {
        return Err(format!(
            "{section}.max_bm_res = {max_bm_res}: must be a finite number > 0 (aihwkit default 0.25; bound management stops once the input reduction exceeds max_bm_res / DAC step)"
        ));
    }
    Ok(())
}

impl Periphery {
    /// Perfect IO: no quantisation, no noise, no clipping, no management.
    pub fn perfect() -> Self {
        Periphery {
            inp_bound: 1.0,
            inp_res_bits: 0,
            out_bound: 0.0,
            out_res_bits: 0,
            out_noise: 0.0,
            noise_management: NoiseManagement::AbsMax,
            bound_management: BoundManagement::None,
            ..Periphery::default()
        }
    }

    /// Whether every MVM needs the full-featured per-vector path (IR drop, weight noise or input
    /// noise on).
    pub fn needs_full_path(&self) -> bool {
        self.ir_drop > 0.0 || self.w_noise > 0.0 || self.inp_noise > 0.0
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.inp_bound.is_finite() && self.inp_bound > 0.0) {
            return Err(format!("periphery.inp_bound = {}: must be > 0 (aihwkit default 1.0)", self.inp_bound));
        }
        // Abs-max noise management scales every input slice to [−1, 1] before the DAC: another
        // range leaves DAC steps unused or clips every input (aihwkit stops on it: "Forward noise
        // management expects bound==1").
        if self.noise_management != NoiseManagement::None && self.inp_bound != 1.0 {
            return Err(format!(
                "periphery.inp_bound = {} with noise_management = \"{}\": noise management scales each input to [-1, 1], so the DAC range must be 1 (as aihwkit requires); set inp_bound = 1.0, or noise_management = \"none\" for inputs on the DAC's own scale",
                self.inp_bound,
                self.noise_management.name()
            ));
        }
        if !(self.nm_thres.is_finite() && self.nm_thres >= 0.0) {
            return Err(format!("periphery.nm_thres = {}: must be a finite number >= 0 (aihwkit default 0: no saturation)", self.nm_thres));
        }
        if self.nm_thres > 0.0 && self.noise_management == NoiseManagement::None {
            return Err(format!(
                "periphery.nm_thres = {} with noise_management = \"none\": without noise management there is no scale to saturate or fix; remove nm_thres, or use noise_management = \"abs_max\" (scale min(max|x|, nm_thres)) or \"constant\" (scale nm_thres)",
                self.nm_thres
            ));
        }
        for (name, bits) in [("inp_res_bits", self.inp_res_bits), ("out_res_bits", self.out_res_bits)] {
            if bits == 1 || bits > 24 {
                return Err(format!("periphery.{name} = {bits}: use 0 (no quantisation) or 2..=24 bits"));
            }
        }
        if !(self.out_bound.is_finite() && self.out_bound >= 0.0) {
            return Err(format!("periphery.out_bound = {}: must be >= 0 (0 = no clipping; aihwkit default 12)", self.out_bound));
        }
        for (name, v) in [("out_noise", self.out_noise), ("inp_noise", self.inp_noise), ("w_noise", self.w_noise), ("ir_drop", self.ir_drop)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("periphery.{name} = {v}: must be a finite number >= 0"));
            }
        }
        check_bm_limits("periphery", self.max_bm_factor, self.max_bm_res)?;
        if !(self.weight_scaling_omega.is_finite() && self.weight_scaling_omega >= 0.0) {
            return Err(format!(
                "periphery.weight_scaling_omega = {}: use 0 (raw weights in the tile, aihwkit's default) or > 0 (each tile rescaled to max|W| = ω)",
                self.weight_scaling_omega
            ));
        }
        if self.weight_scaling_columnwise && self.weight_scaling_omega <= 0.0 {
            return Err("periphery.weight_scaling_columnwise = true needs weight_scaling_omega > 0 (per-column scales rescale each column to max|W| = ω; with ω = 0 the raw weights stay in the tile): set weight_scaling_omega, e.g. 1.0".into());
        }
        if self.ir_drop_g_ratio.is_nan() || self.ir_drop_g_ratio <= 0.0 {
            return Err(format!("periphery.ir_drop_g_ratio = {}: must be > 0 (default 571428.6)", self.ir_drop_g_ratio));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_splits_cover_and_invert() {
        for n in [1u32, 7, 64, 512, 513, 1000, 1024, 1537] {
            for parts in 1..=5u32.min(n) {
                let mut next = 0;
                for i in 0..parts {
                    assert_eq!(split_start(n, parts, i), next);
                    let len = split_len(n, parts, i);
                    assert!(len == n / parts || len == n / parts + 1);
                    for j in next..next + len {
                        assert_eq!(split_index(n, parts, j), i, "n={n} parts={parts} j={j}");
                    }
                    next += len;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn default_steps_match_aihwkit() {
        // Within f32 rounding of the exact step.
        assert!((step(7, 1.0) - 2.0 / 126.0).abs() < 2.0 / 126.0 * 1e-7);
        assert!((step(9, 12.0) - 24.0 / 510.0).abs() < 24.0 / 510.0 * 1e-7);
        // aihwkit's f32 grid, bit for bit: (f32)(1/510) · 24f32 = 0x3D40C0C2, one ulp above the
        // f32 nearest to 24/510 (0x3D40C0C1); (f32)(1/126) · 2f32 = 0x3C820821.
        assert_eq!((step(9, 12.0) as f32).to_bits(), 0x3D40_C0C2);
        assert_eq!((24.0f64 / 510.0) as f32, f32::from_bits(0x3D40_C0C1));
        assert_eq!((step(7, 1.0) as f32).to_bits(), 0x3C82_0821);
        // So the 9-bit ADC's top code is past the bound, as in aihwkit, and the 8-bit one's is not.
        assert!(255.0 * step(9, 12.0) as f32 > 12.0);
        assert!(127.0 * step(8, 12.0) as f32 <= 12.0);
    }

    /// aihwkit's stopping rule at its defaults (max_bm_factor 1000, max_bm_res 0.25): the last
    /// reduction is the smallest power of two above min(1000, 0.25 / DAC step).
    #[test]
    fn bm_last_reduction_follows_aihwkit() {
        let p = Periphery::default();
        for (bits, want) in [(7u32, 16u32), (8, 32), (6, 8), (5, 4), (4, 2), (3, 1), (0, 1024)] {
            let got = bm_last_reduction(p.max_bm_factor, p.max_bm_res, step(bits, p.inp_bound));
            assert_eq!(got, want, "{bits}-bit DAC: last reduction {got}, aihwkit {want}");
        }
        // max_bm_factor binds below the DAC's limit; the test is strict (> L), so an L that is a
        // power of two is itself tried.
        let s7 = step(7, 1.0);
        assert_eq!(bm_last_reduction(4.0, 0.25, s7), 8);
        assert_eq!(bm_last_reduction(5.0, 0.25, s7), 8);
        assert_eq!(bm_last_reduction(1.0, 0.25, s7), 2);
        assert_eq!(bm_last_reduction(0.0, 0.25, s7), 1);
        assert_eq!(bm_last_reduction(32768.0, 0.25, 0.0), 65536);
        // max_bm_res scales the DAC's limit: 0.5 / (2/126) = 31.5.
        assert_eq!(bm_last_reduction(1000.0, 0.5, s7), 32);
    }

    #[test]
    fn bm_settings_are_validated() {
        for (p, field) in [
            (Periphery { max_bm_factor: -1.0, ..Periphery::default() }, "periphery.max_bm_factor"),
            (Periphery { max_bm_factor: f64::NAN, ..Periphery::default() }, "periphery.max_bm_factor"),
            (Periphery { max_bm_res: 0.0, ..Periphery::default() }, "periphery.max_bm_res"),
            (Periphery { max_bm_res: f64::INFINITY, ..Periphery::default() }, "periphery.max_bm_res"),
            (Periphery { inp_bound: 2.0, ..Periphery::default() }, "periphery.inp_bound = 2 with noise_management"),
            (
                Periphery { inp_bound: 2.0, noise_management: NoiseManagement::Constant, ..Periphery::default() },
                "periphery.inp_bound = 2 with noise_management = \"constant\"",
            ),
            (Periphery { nm_thres: -1.0, ..Periphery::default() }, "periphery.nm_thres = -1: must be a finite number >= 0"),
            (Periphery { nm_thres: f64::NAN, ..Periphery::default() }, "periphery.nm_thres = NaN"),
            (
                Periphery { nm_thres: 1.0, noise_management: NoiseManagement::None, ..Periphery::default() },
                "periphery.nm_thres = 1 with noise_management = \"none\"",
            ),
        ] {
            let e = p.validate().unwrap_err();
            assert!(e.starts_with(field), "{e}");
        }
        assert!(Periphery::default().validate().is_ok());
        // Without abs-max scaling any DAC range is the hardware's own.
        assert!(Periphery { inp_bound: 2.0, noise_management: NoiseManagement::None, ..Periphery::default() }.validate().is_ok());
        assert!(Periphery { nm_thres: 1.0, noise_management: NoiseManagement::Constant, ..Periphery::default() }.validate().is_ok());
    }

    #[test]
    fn input_ranges_are_set_per_input_tile_and_checked() {
        let w = vec![0.5f32; 5 * 7];
        let mut m = MappedMatrix::new(&w, 5, 7, TileShape { max_in: 3, max_out: 2 }, 1.0);
        assert_eq!((m.tiles_in, m.tiles_out), (3, 3));
        m.set_input_ranges(&[1.0, 2.0, 3.0], "l.input_range").unwrap();
        for (k, t) in m.tiles.iter().enumerate() {
            assert_eq!(t.input_range, [1.0, 2.0, 3.0][k % 3], "tile {k}");
        }
        let stride = m.max_rows() as usize;
        assert!(m.rows.iter().enumerate().all(|(i, r)| r.input_range == [1.0, 2.0, 3.0][(i / stride) % 3]));
        m.set_input_ranges(&[0.5], "l.input_range").unwrap();
        assert!(m.tiles.iter().chain(&m.rows).all(|t| t.input_range == 0.5));
        assert!(m.set_input_ranges(&[1.0, 2.0], "l.input_range").unwrap_err().starts_with("l.input_range has 2 values"));
        assert!(m.set_input_ranges(&[1.0, 0.0, 1.0], "l.input_range").unwrap_err().starts_with("l.input_range[1] = 0"));
    }

    #[test]
    fn tiles_have_own_scale() {
        let (o, i) = (3u32, 5u32);
        let w: Vec<f32> = (0..15).map(|k| k as f32 - 4.0).collect();
        let m = MappedMatrix::new(&w, o, i, TileShape { max_in: 3, max_out: 2 }, 1.0);
        assert_eq!((m.tiles_in, m.tiles_out), (2, 2));
        for t in &m.tiles {
            assert!((t.wmax_norm - 1.0).abs() < 1e-6);
        }
    }
}
