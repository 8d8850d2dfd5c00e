//! A sweep of hundreds of points keeps its outputs small and its terminal output capped: the
//! shape of experiments/kernel_rbf_seeds.toml (projection seeds × projections × feature counts ×
//! γ) at 20 seeds, tiny feature counts, 20 data points and 2 trials, so it runs in seconds in a
//! debug build on the CPU backend. Post-processing speed is measured in `aimc bench`, not here.

use std::path::PathBuf;
use std::process::Command;

/// The 5 MB budget of report.html and of every PNG, whatever the sweep.
const MAX_FILE_BYTES: u64 = 5_000_000;
/// The terminal's rows are capped at 40 per table (report::console::MAX_TERMINAL_ROWS); a few
/// header, note and setup lines come with them.
const MAX_TERMINAL_LINES: usize = 200;

#[test]
fn an_800_point_sweep_gives_a_small_report_and_a_capped_terminal() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("aimc-sweep-size-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seeds: Vec<String> = (0..20).map(|s| s.to_string()).collect();
    let file = dir.join("seeds.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "sweep_size"
workload = "kernel_error"
seed = 2024
trials = 2
[kernel]
kernel = "rbf"
features = 8
points = 20
[data]
path = "{}"
header = true
[device]
model = "pcm"
[sweep]
t = ["1h"]
projection_seed = [{}]
projection = ["rff", "sorf"]
features = [4, 8, 16, 32, 64]
gamma = [0.0125, 0.025, 0.05, 0.1]
"#,
            root.join("experiments/data/breast_cancer.csv").display(),
            seeds.join(", ")
        ),
    )
    .unwrap();
    let out_dir = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_aimc"))
        .args(["run", file.to_str().unwrap(), "--backend", "cpu", "--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "aimc run failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));

    // The terminal: capped tables, each saying what it left out and where the rest are.
    let lines = stdout.lines().count();
    assert!(lines <= MAX_TERMINAL_LINES, "{lines} terminal lines:\n{stdout}");
    assert!(stdout.contains("40 of 800 points shown"), "{stdout}");
    assert!(stdout.contains("paired differences shown (the largest by |mean|); all of them are in results.json"), "{stdout}");

    // Every point and pair is still in results.json.
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["points"].as_array().unwrap().len(), 800);
    assert!(results["paired"].as_array().unwrap().len() > 1000);

    // Small files, and plots and report that say they show a selection.
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".png") || name == "report.html" {
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size < MAX_FILE_BYTES, "{name}: {size} bytes");
        }
    }
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("12 of 800 series shown, evenly spaced in sweep order"), "plot captions say what they leave out");
    assert!(md.contains("12 of 160 lines shown"), "the feature plot says what it leaves out");
    assert!(md.contains("The table lists the 40 largest of the"), "the paired table is capped");
    // The noise floor: one verdict for the median line, not one per seed line.
    let floor = md.split("## Noise floor").nth(1).and_then(|s| s.split("\n## ").next()).expect("a noise-floor section");
    assert_eq!(floor.matches("levelled off").count() + floor.matches("still improves").count(), 1, "{floor}");
    let _ = std::fs::remove_dir_all(&dir);
}
