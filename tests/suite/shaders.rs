//! Every WGSL stage module parses and validates with naga, the stage table covers every shader
//! and twin under one name, and every struct shared with WGSL has the same size on both sides
//! (shaders/common/layout.wgsl vs src/engine/layout.rs).

use aimc::engine::layout::*;
use aimc::engine::stages::{Mulhi, Stage};

fn parse(stage: Stage) -> naga::Module {
    parse_with(stage, Mulhi::Halves)
}

fn parse_with(stage: Stage, mulhi: Mulhi) -> naga::Module {
    let src = stage.module_source_with(mulhi);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}.wgsl: {}", stage.name(), e.emit_to_string(&src)));
    let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
    v.validate(&module).unwrap_or_else(|e| panic!("{}.wgsl: {}", stage.name(), e.emit_to_string(&src)));
    module
}

#[test]
fn every_stage_validates_and_has_its_entry_point() {
    for stage in Stage::ALL {
        for mulhi in Mulhi::ALL {
            let m = parse_with(stage, mulhi);
            assert!(m.entry_points.iter().any(|e| e.name == stage.name()), "{}.wgsl ({}) has no entry point", stage.name(), mulhi.name());
        }
        let m = parse(stage);
        assert!(m.entry_points.iter().any(|e| e.name == stage.name()), "{}.wgsl has no entry point named {}", stage.name(), stage.name());
    }
}

/// One name per stage: shaders/NAME.wgsl with entry point NAME and src/engine/cpu/NAME.rs for
/// every stage of the table, and no stage shader outside it (a shader without its table line
/// would never be validated or dispatched).
#[test]
fn the_stage_table_covers_every_shader_and_twin() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    for stage in Stage::ALL {
        let name = stage.name();
        let wgsl = root.join(format!("shaders/{name}.wgsl"));
        let text = std::fs::read_to_string(&wgsl).unwrap_or_else(|e| panic!("stage {name}: {}: {e}", wgsl.display()));
        assert!(stage.source().ends_with(&text), "stage {name}: its source does not end with shaders/{name}.wgsl");
        let twin = root.join(format!("src/engine/cpu/{name}.rs"));
        assert!(twin.is_file(), "stage {name}: no CPU twin {}", twin.display());
    }
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(root.join("shaders")).unwrap() {
        let path = entry.unwrap().path();
        if let (Some("wgsl"), Some(stem)) = (path.extension().and_then(|e| e.to_str()), path.file_stem().and_then(|s| s.to_str())) {
            if !names.contains(&stem) {
                unlisted.push(stem.to_string());
            }
        }
    }
    assert!(unlisted.is_empty(), "shaders/*.wgsl with no line in the stage table (src/engine/stages.rs): {unlisted:?}");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a stage name appears twice in the table: {names:?}");
}

/// The table's WG column says which stages the pipeline overrides `WG` for: exactly those whose
/// module declares `override WG` (a mismatch is a pipeline-creation error on the GPU).
#[test]
fn wg_override_column_matches_the_shaders() {
    for stage in Stage::ALL {
        let m = parse(stage);
        let declares = m.overrides.iter().any(|(_, o)| o.name.as_deref() == Some("WG"));
        assert_eq!(declares, stage.has_wg_override(), "stage {}: `override WG` in the shader {declares}, table says {}", stage.name(), stage.has_wg_override());
    }
}

#[test]
fn struct_sizes_agree_with_wgsl() {
    let m = parse(Stage::Drift);
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(m.to_ctx()).unwrap();
    let rust = [
        ("Curve", std::mem::size_of::<Curve>()),
        ("DeviceParams", std::mem::size_of::<DeviceParams>()),
        ("IoParams", std::mem::size_of::<IoParams>()),
        ("KernelParams", std::mem::size_of::<KernelParams>()),
        ("ConvParams", std::mem::size_of::<ConvParams>()),
        ("SeqParams", std::mem::size_of::<SeqParams>()),
        ("LayerParams", std::mem::size_of::<LayerParams>()),
        ("StageParams", std::mem::size_of::<StageParams>()),
        ("TileInfo", std::mem::size_of::<TileInfo>()),
    ];
    for (name, size) in rust {
        let (handle, _) =
            m.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("struct {name} missing from shaders/common/layout.wgsl"));
        let wgsl = layouter[handle].size as usize;
        assert_eq!(wgsl, size, "struct {name}: WGSL size {wgsl} bytes, Rust size {size} bytes");
    }
    // Uniform buffers need 16-byte multiples.
    assert_eq!(std::mem::size_of::<StageParams>() % 16, 0);
}

/// Rust field offsets, by name, of a `#[repr(C)]` struct.
macro_rules! offsets {
    ($t:ty: $($f:ident),* $(,)?) => {
        vec![$((stringify!($f), std::mem::offset_of!($t, $f))),*]
    };
}

#[test]
fn struct_members_sit_at_the_same_offsets_in_rust_and_wgsl() {
    let m = parse(Stage::Drift);
    let rust: Vec<(&str, Vec<(&str, usize)>)> = vec![
        ("Curve", offsets!(Curve: kind, brk, a, b, lo, hi, p, c0, c1, c2, c3, _pad)),
        (
            "DeviceParams",
            offsets!(DeviceParams: g_max, prog_scale, drift_scale, read_scale, prog_norm, drift_path, prog_mode, zero_below, prog_c0, prog_c1, prog_c2, prog_c3, prog_brk, prog_h0, prog_h1, prog_h2, prog_h3, nu_knots, prog_knots, read_knots, mu_nu, sigma_nu, q_s, nu_table, level_tables, relax, pairs, stuck_set, stuck_reset, _pad_pairs, pair_f),
        ),
        (
            "IoParams",
            offsets!(IoParams: inp_step, inp_bound, out_step, out_bound, out_noise, w_noise, ir_drop, ir_g_ratio, nm_mode, bm_mode, w_noise_type, bm_max_red, nm_thres, inp_noise, _pad_io1, _pad_io2),
        ),
        (
            "LayerParams",
            offsets!(LayerParams: n_in, n_out, tiles_in, tiles_out, trials, trial_offset, batch, layer, t_index, key0, key1, gdc_mode, log_t_ratio, read_sqrt_log, full_path, x_per_trial, activation, chunks_per_tile, wmax, gdc_base, max_rows, alpha_rows, dac_short, vector_offset, reads_per_prog, bm_pass, redo_vectors, relax_at),
        ),
        ("KernelParams", offsets!(KernelParams: rows, s, replicas, width, map, heads, seq, dv, causal, blocks, _pad0, _pad1)),
        (
            "ConvParams",
            offsets!(ConvParams: samples, in_c, in_h, in_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w, out_h, out_w, pool_kind, pool_size, pool_stride, pool_h, pool_w, in_nchw, pool_kw, pool_sw, pool_pad_h, pool_pad_w, pool_count_pad, add_stride, add_c, add_h, add_w, add_before),
        ),
        (
            "SeqParams",
            offsets!(SeqParams: samples, seq, d_model, heads, d_head, width, causal, blocks, vocab, pool, rows, width_in, scale, eps, sample_offset, experts, top_k, expert, mode, taps, max_answer, sep, answers, n_best),
        ),
        ("StageParams", offsets!(StageParams: layer, dev, io, kern, conv, seq)),
        (
            "TileInfo",
            offsets!(TileInfo: row_start, rows, col_start, cols, scale, wmax_norm, mean_abs_norm, prog_mult, drift_mult, read_mult, input_range, w_lo, w_hi),
        ),
    ];
    for (name, fields) in rust {
        let (_, ty) = m.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("struct {name} missing from layout.wgsl"));
        let naga::TypeInner::Struct { members, .. } = &ty.inner else { panic!("{name} is not a struct") };
        let wgsl: Vec<(String, usize)> = members.iter().map(|mb| (mb.name.clone().unwrap_or_default(), mb.offset as usize)).collect();
        let rust: Vec<(String, usize)> = fields.iter().map(|(f, o)| (f.to_string(), *o)).collect();
        assert_eq!(wgsl, rust, "struct {name}: WGSL members (name, offset) vs Rust");
    }
}
