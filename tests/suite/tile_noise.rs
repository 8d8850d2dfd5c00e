//! Per-tile device multipliers (`Tile::noise`: programming noise, drift exponent, read noise), the
//! engine's way of giving each 3D tier its own variability: a tile with multipliers 0 holds its
//! weights exactly while its neighbour on the same matrix drifts and scatters, on the CPU twins
//! and (when an adapter exists) the GPU stages; multipliers of 1 leave every number as it was.

use crate::common::*;
use aimc::crossbar::{Gdc, MappedMatrix, Periphery, TileShape};
use aimc::device::DeviceModel;
use aimc::engine::plan::{run_device_state, RunConfig};
use aimc::engine::Backend;

fn cfg() -> RunConfig {
    RunConfig {
        reads_per_programming: 1,
        device: DeviceModel::pcm(),
        periphery: Periphery::perfect(),
        gdc: Gdc::Off,
        key: aimc::rng::key(3, 0),
        trials: 3,
        first_trial: 0,
        times: vec![3.15e7],
        max_chunk: 8,
        layer_noise: Vec::new(),
    }
}

/// 12 outputs × 40 inputs on two input tiles of 20: tile 1 silenced.
fn matrix() -> MappedMatrix {
    let w = aimc::rng::uniform_signed(12 * 40, 4);
    let mut m = MappedMatrix::new(&w, 12, 40, TileShape { max_in: 20, max_out: 16 }, 0.0);
    m.set_tile_noise(|t| if t.col_start == 0 { [1.0; 3] } else { [0.0; 3] });
    m
}

fn check(be: &mut dyn Backend, name: &str) {
    let m = matrix();
    let (weff, _) = run_device_state(be, &m, &cfg()).unwrap();
    let nw = m.len();
    let (mut quiet, mut noisy) = (0.0f32, 0.0f32);
    for z in 0..3 {
        for i in 0..nw {
            let d = (weff[0][z * nw + i] - m.w_norm[i]).abs();
            if i % 40 >= 20 {
                quiet = quiet.max(d / m.w_norm[i].abs().max(1e-3));
            } else {
                noisy = noisy.max(d);
            }
        }
    }
    // Conductance and back: a few f32 roundings.
    assert!(quiet <= 1e-5, "{name}: a tile without noise or drift moved by {quiet:.2e} (relative)");
    assert!(noisy > 0.05, "{name}: the PCM tile should drift and scatter after a year, moved {noisy:.2e}");
}

#[test]
fn a_silenced_tile_keeps_its_weights_while_its_neighbour_drifts() {
    check(&mut cpu(), "cpu twins");
    check(&mut aimc::engine::cpu::CpuBackend::fast(2), "fast cpu");
    if let Some(mut g) = gpu(256) {
        check(&mut g, "gpu");
    }
}

#[test]
fn unit_multipliers_change_nothing() {
    let w = aimc::rng::uniform_signed(12 * 40, 4);
    let plain = MappedMatrix::new(&w, 12, 40, TileShape { max_in: 20, max_out: 16 }, 0.0);
    let mut ones = plain.clone();
    ones.set_tile_noise(|_| [1.0; 3]);
    let (a, _) = run_device_state(&mut cpu(), &plain, &cfg()).unwrap();
    let (b, _) = run_device_state(&mut cpu(), &ones, &cfg()).unwrap();
    assert_eq!(a, b);
}
