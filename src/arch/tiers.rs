//! The 3D AIMC hardware model and the MoE layer it runs (tiers-energy.md §1–2; Büchel et al.,
//! Nat. Comput. Sci. 5, 13–26 (2025), "3D AIMC architecture" and Fig. 1): tiles of stacked tiers,
//! one crossbar per tier, per-tier noise multipliers, and the matrices of one MoE layer.

use serde::{Deserialize, Serialize};

/// Multipliers of the device noise on one tier index (a 3D effect: tiers of a stack differ).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierNoise {
    /// Programming-noise multiplier.
    pub prog: f64,
    /// Drift-exponent multiplier.
    pub drift: f64,
    /// Read-noise multiplier.
    pub read: f64,
}

impl TierNoise {
    /// No change from the device model.
    pub const UNIFORM: TierNoise = TierNoise { prog: 1.0, drift: 1.0, read: 1.0 };
}

/// The accelerator: `tiles` tiles, each a stack of `tiers` crossbars of `rows` × `cols`.
/// Only one tier of a tile computes at a time; tiles run in parallel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Tiles (independent compute units).
    pub tiles: u32,
    /// Tiers stacked per tile.
    pub tiers: u32,
    /// Crossbar rows per tier (inputs).
    pub rows: u32,
    /// Crossbar columns per tier (outputs).
    pub cols: u32,
    /// Noise multipliers per tier index: empty = 1.0 everywhere, otherwise exactly `tiers` entries.
    #[serde(default)]
    pub tier_noise: Vec<TierNoise>,
}

impl Architecture {
    /// Checks every field; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.tiles == 0 {
            return Err("arch.tiles = 0: must be >= 1 (tiles of the accelerator)".into());
        }
        if self.tiers == 0 {
            return Err("arch.tiers = 0: must be >= 1 (tiers stacked per tile)".into());
        }
        if self.rows == 0 || self.cols == 0 {
            return Err(format!("arch.rows = {}, arch.cols = {}: both must be >= 1 (crossbar size per tier)", self.rows, self.cols));
        }
        if !self.tier_noise.is_empty() && self.tier_noise.len() != self.tiers as usize {
            return Err(format!(
                "arch.tier_noise has {} entries but arch.tiers = {}: give one {{ prog, drift, read }} per tier, or none for uniform",
                self.tier_noise.len(),
                self.tiers
            ));
        }
        for (i, n) in self.tier_noise.iter().enumerate() {
            for (name, v) in [("prog", n.prog), ("drift", n.drift), ("read", n.read)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("arch.tier_noise[{i}].{name} = {v}: must be a finite multiplier >= 0"));
                }
            }
        }
        Ok(())
    }

    /// Tier-chunks of the whole accelerator (tiles × tiers).
    pub fn capacity(&self) -> u64 {
        self.tiles as u64 * self.tiers as u64
    }

    /// Input and output blocks of an `inputs` × `outputs` matrix: ceil(in/rows), ceil(out/cols).
    pub fn blocks(&self, inputs: u32, outputs: u32) -> (u32, u32) {
        (inputs.div_ceil(self.rows), outputs.div_ceil(self.cols))
    }

    /// Tier-chunks an `inputs` × `outputs` matrix takes: ceil(in/rows)·ceil(out/cols).
    pub fn chunks(&self, inputs: u32, outputs: u32) -> u64 {
        let (i, o) = self.blocks(inputs, outputs);
        i as u64 * o as u64
    }

    /// Noise multipliers of tier index `tier` ([`TierNoise::UNIFORM`] without a table).
    pub fn tier_noise(&self, tier: u32) -> TierNoise {
        self.tier_noise.get(tier as usize).copied().unwrap_or(TierNoise::UNIFORM)
    }
}

/// One mixture-of-experts layer: router Linear(d_model → E), top-k, expert FFN1 (d_model → d_ff),
/// activation, FFN2 (d_ff → d_out, d_model unless a classifier's classes), gate-weighted sum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeLayer {
    /// Model width.
    pub d_model: u32,
    /// Hidden width of each expert.
    pub d_ff: u32,
    /// Experts E.
    pub experts: u32,
    /// Experts chosen per token.
    pub top_k: u32,
    /// Output width of the experts (0: d_model, as in a transformer block).
    #[serde(default)]
    pub d_out: u32,
}

/// Which weight matrix of a MoE layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixKind {
    /// The router, d_model → E.
    Router,
    /// FFN1 of expert e, d_model → d_ff.
    Ffn1(u32),
    /// FFN2 of expert e, d_ff → d_out.
    Ffn2(u32),
}

/// One weight matrix: `inputs` × `outputs`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// Its role in the layer.
    pub kind: MatrixKind,
    /// Input width (crossbar rows).
    pub inputs: u32,
    /// Output width (crossbar columns).
    pub outputs: u32,
}

impl MoeLayer {
    /// Checks every field; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("d_model", self.d_model), ("d_ff", self.d_ff), ("experts", self.experts), ("top_k", self.top_k)] {
            if v == 0 {
                return Err(format!("layer.{name} = 0: must be >= 1"));
            }
        }
        if self.top_k > self.experts {
            return Err(format!("layer.top_k = {} > layer.experts = {}: a token cannot choose more experts than exist", self.top_k, self.experts));
        }
        Ok(())
    }

    /// The layer's matrices in mapping order: router, then FFN1 and FFN2 of expert 0, 1, ...
    pub fn matrices(&self) -> Vec<Matrix> {
        let mut m = vec![Matrix { kind: MatrixKind::Router, inputs: self.d_model, outputs: self.experts }];
        for e in 0..self.experts {
            m.push(Matrix { kind: MatrixKind::Ffn1(e), inputs: self.d_model, outputs: self.d_ff });
            m.push(Matrix { kind: MatrixKind::Ffn2(e), inputs: self.d_ff, outputs: self.out() });
        }
        m
    }

    /// Weights of the router.
    pub fn router_weights(&self) -> u64 {
        self.d_model as u64 * self.experts as u64
    }

    /// Output width of the experts.
    pub fn out(&self) -> u32 {
        if self.d_out == 0 {
            self.d_model
        } else {
            self.d_out
        }
    }

    /// Weights of one expert (FFN1 + FFN2).
    pub fn expert_weights(&self) -> u64 {
        (self.d_model as u64 + self.out() as u64) * self.d_ff as u64
    }

    /// Multiply-accumulate FLOPs of one token (2 per weight used: router + top_k experts).
    pub fn flops_per_token(&self) -> f64 {
        2.0 * (self.router_weights() + self.top_k as u64 * self.expert_weights()) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(tiles: u32, tiers: u32) -> Architecture {
        Architecture { tiles, tiers, rows: 512, cols: 512, tier_noise: vec![] }
    }

    #[test]
    fn chunk_counts_by_hand() {
        let a = arch(8, 4);
        assert_eq!(a.chunks(1024, 2048), 2 * 4);
        assert_eq!(a.chunks(2048, 1024), 4 * 2);
        assert_eq!(a.chunks(1024, 4), 2);
        assert_eq!(a.chunks(513, 1), 2);
        assert_eq!(a.capacity(), 32);
    }

    #[test]
    fn bad_architecture_names_the_field() {
        let e = arch(4, 0).validate().unwrap_err();
        assert!(e.contains("arch.tiers = 0"), "{e}");
        let e = arch(0, 4).validate().unwrap_err();
        assert!(e.contains("arch.tiles = 0"), "{e}");
        let mut a = arch(4, 3);
        a.tier_noise = vec![TierNoise::UNIFORM; 2];
        let e = a.validate().unwrap_err();
        assert!(e.contains("arch.tier_noise") && e.contains("arch.tiers = 3"), "{e}");
        a.tier_noise = vec![TierNoise::UNIFORM, TierNoise::UNIFORM, TierNoise { prog: -1.0, drift: 1.0, read: 1.0 }];
        assert!(a.validate().unwrap_err().contains("arch.tier_noise[2].prog"));
        a.tier_noise[2].prog = 2.0;
        assert!(a.validate().is_ok());
        assert_eq!(a.tier_noise(2).prog, 2.0);
        let e: Result<Architecture, _> = toml::from_str("tiles = 1\ntiers = 1\nrows = 1\ncols = 1\nbogus = 3\n");
        assert!(e.is_err(), "unknown fields are rejected");
    }

    #[test]
    fn bad_layer_names_the_field() {
        let l = MoeLayer { d_model: 8, d_ff: 16, experts: 2, top_k: 3, d_out: 0 };
        assert!(l.validate().unwrap_err().contains("layer.top_k = 3 > layer.experts = 2"));
        let l = MoeLayer { d_model: 0, d_ff: 16, experts: 2, top_k: 1, d_out: 0 };
        assert!(l.validate().unwrap_err().contains("layer.d_model = 0"));
        let l = MoeLayer { d_model: 1024, d_ff: 2048, experts: 4, top_k: 2, d_out: 0 };
        assert_eq!(l.matrices().len(), 9);
        assert_eq!(l.flops_per_token(), 2.0 * (1024.0 * 4.0 + 2.0 * 2.0 * 1024.0 * 2048.0));
    }
}
