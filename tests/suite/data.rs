//! Data as people have it: a .npy feature matrix with a .npy of labels gives the same run as the
//! same rows in a CSV, trial for trial; mismatched or non-integer labels are named. And the
//! shipped digit-token file is digits.csv's test split with every pixel + 1.
use crate::common;

use aimc::workload::io::{npy_bytes, parse_csv_with, Matrix};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const EXP: &str = r#"
name = "d"
workload = "classifier"
seed = 3
trials = 4
weight_error_trials = 0
[model]
path = "models/digits_mlp.safetensors"
DATA
[sweep]
t = ["1d"]
"#;

fn per_trial(text: &str) -> Result<Vec<f64>, String> {
    Ok(common::run_ok(&mut common::cpu(), &common::experiment(text)?).points[0].per_trial.clone())
}

#[test]
fn npy_data_equals_the_csv() {
    let csv = std::fs::read_to_string(root().join("experiments/data/digits.csv")).unwrap();
    let ds = parse_csv_with(&csv, 1.0, false).unwrap().rows(1347, 1447);
    let dir = std::env::temp_dir().join(format!("aimc-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    std::fs::write(&x, npy_bytes(&Matrix { rows: ds.len(), cols: ds.n_features, data: ds.x.clone() })).unwrap();
    let labels: Vec<f32> = ds.labels.iter().map(|&l| l as f32).collect();
    std::fs::write(&y, npy_bytes(&Matrix { rows: ds.len(), cols: 1, data: labels })).unwrap();
    let from_csv = per_trial(&EXP.replace("DATA", "[data]\npath = \"data/digits.csv\"\nscale = 16.0\nrows = [1347, 1447]")).unwrap();
    let npy = format!("[data]\npath = {:?}\nlabels = {:?}\nscale = 16.0", x.display().to_string(), y.display().to_string());
    assert_eq!(per_trial(&EXP.replace("DATA", &npy)).unwrap(), from_csv);
    // Labels that do not fit the features, or are not integers, are named.
    let short = dir.join("short.npy");
    std::fs::write(&short, npy_bytes(&Matrix { rows: 3, cols: 1, data: vec![0.0, 1.0, 2.0] })).unwrap();
    let e = per_trial(&EXP.replace("DATA", &npy.replace(&y.display().to_string(), &short.display().to_string()))).unwrap_err();
    assert!(e.contains("data.labels") && e.contains("3 labels"), "{e}");
    let frac = dir.join("frac.npy");
    std::fs::write(&frac, npy_bytes(&Matrix { rows: ds.len(), cols: 1, data: vec![0.5; ds.len()] })).unwrap();
    let e = per_trial(&EXP.replace("DATA", &npy.replace(&y.display().to_string(), &frac.display().to_string()))).unwrap_err();
    assert!(e.contains("label 0.5"), "{e}");
    let e = per_trial(&EXP.replace("DATA", &format!("[data]\npath = {:?}", x.display().to_string()))).unwrap_err();
    assert!(e.contains("data.labels"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An .npz as numpy.savez (stored) or numpy.savez_compressed (deflated) writes it.
fn npz(arrays: &[(&str, &Matrix)], deflate: bool) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    for (name, m) in arrays {
        w.start_file(format!("{name}.npy"), zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        w.write_all(&npy_bytes(m)).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn npz_data_equals_the_csv_and_bad_archives_are_named() {
    let csv = std::fs::read_to_string(root().join("experiments/data/digits.csv")).unwrap();
    let ds = parse_csv_with(&csv, 1.0, false).unwrap().rows(1347, 1447);
    let x = Matrix { rows: ds.len(), cols: ds.n_features, data: ds.x.clone() };
    let y = Matrix { rows: ds.len(), cols: 1, data: ds.labels.iter().map(|&l| l as f32).collect() };
    let dir = std::env::temp_dir().join(format!("aimc-npz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let from_csv = per_trial(&EXP.replace("DATA", "[data]\npath = \"data/digits.csv\"\nscale = 16.0\nrows = [1347, 1447]")).unwrap();
    let data = |p: &std::path::Path, extra: &str| format!("[data]\npath = {:?}\nscale = 16.0\n{extra}", p.display().to_string());
    for deflate in [false, true] {
        let p = dir.join(format!("xy-{deflate}.npz"));
        std::fs::write(&p, npz(&[("x", &x), ("y", &y)], deflate)).unwrap();
        assert_eq!(per_trial(&EXP.replace("DATA", &data(&p, ""))).unwrap(), from_csv, "deflate {deflate}");
    }
    // Other array names: given in the file, or named in the error with what the archive holds.
    let p = dir.join("named.npz");
    std::fs::write(&p, npz(&[("images", &x), ("targets", &y)], true)).unwrap();
    assert_eq!(per_trial(&EXP.replace("DATA", &data(&p, "features = \"images\"\nlabels = \"targets\""))).unwrap(), from_csv);
    let e = per_trial(&EXP.replace("DATA", &data(&p, ""))).unwrap_err();
    assert!(e.contains("data.features") && e.contains("no array named \"x\"") && e.contains("images, targets"), "{e}");
    // A damaged archive is an error, not a panic or a guess.
    let mut bytes = npz(&[("x", &x), ("y", &y)], true);
    let n = bytes.len();
    bytes.truncate(n / 2);
    let p = dir.join("cut.npz");
    std::fs::write(&p, bytes).unwrap();
    let e = per_trial(&EXP.replace("DATA", &data(&p, ""))).unwrap_err();
    assert!(e.contains("cut.npz"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// experiments/data/digits_seq_test.csv is what its documented command makes: the test rows
/// (1347..1797) of digits.csv, every pixel + 1 (the transformer's tokens; 0 is padding), labels kept.
#[test]
fn digit_tokens_are_the_test_pixels_plus_one() {
    let read = |f: &str| std::fs::read_to_string(root().join("experiments/data").join(f)).unwrap();
    let (digits, tokens) = (read("digits.csv"), read("digits_seq_test.csv"));
    let test: Vec<&str> = digits.lines().skip(1347).collect();
    let rows: Vec<&str> = tokens.lines().collect();
    assert_eq!(rows.len(), 450);
    for (k, (d, t)) in test.iter().zip(&rows).enumerate() {
        let d: Vec<u32> = d.split(',').map(|v| v.parse().unwrap()).collect();
        let t: Vec<u32> = t.split(',').map(|v| v.parse().unwrap()).collect();
        let expected: Vec<u32> = d.iter().enumerate().map(|(i, &v)| if i < 64 { v + 1 } else { v }).collect();
        assert_eq!(t, expected, "row {k}");
    }
}
