//! Every WGSL stage module parses and validates with naga, and every struct shared with WGSL has
//! the same size on both sides (shaders/common/layout.wgsl vs src/engine/layout.rs).

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

#[test]
fn struct_sizes_agree_with_wgsl() {
    let m = parse(Stage::Drift);
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(m.to_ctx()).unwrap();
    let rust = [
        ("Curve", std::mem::size_of::<Curve>()),
        ("DeviceParams", std::mem::size_of::<DeviceParams>()),
        ("IoParams", std::mem::size_of::<IoParams>()),
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
