//! Model and data files: `.npy` matrices (NumPy format 1.0/2.0, little-endian f32/f64, C order),
//! `.safetensors` state dicts as PyTorch writes them (`0.weight`, `0.bias`, `2.weight`, ...), and
//! CSV data sets (features then an integer label per row). Every error names the file and the fix.

use super::WorkloadError;
use std::path::Path;

/// A dense row-major matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

fn err(path: &Path, msg: impl Into<String>) -> WorkloadError {
    WorkloadError::File { path: path.display().to_string(), msg: msg.into() }
}

fn read(path: &Path) -> Result<Vec<u8>, WorkloadError> {
    std::fs::read(path).map_err(|e| err(path, format!("cannot read it ({e}); check the path")))
}

/// Reads a 2-D (or 1-D, as one row) `.npy` array of f32 or f64.
pub fn read_npy(path: &Path) -> Result<Matrix, WorkloadError> {
    parse_npy(&read(path)?).map_err(|m| err(path, m))
}

pub fn parse_npy(b: &[u8]) -> Result<Matrix, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (missing the \\x93NUMPY magic); save it with numpy.save".into());
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => return Err(format!(".npy format version {v} is not supported (1, 2 or 3)")),
    };
    let header = std::str::from_utf8(b.get(start..start + hlen).ok_or("truncated .npy header")?).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[i..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or("the .npy header has no descr")?;
    let descr = descr.trim_start_matches(['\'', '"']);
    let width = if descr.starts_with("<f4") {
        4
    } else if descr.starts_with("<f8") {
        8
    } else {
        return Err(format!("dtype {} is not supported: convert with arr.astype(numpy.float32)", descr.split(['\'', '"']).next().unwrap_or("?")));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered arrays are not supported: save numpy.ascontiguousarray(arr)".into());
    }
    let shape_s = field("shape").ok_or("the .npy header has no shape")?;
    let shape_s = &shape_s[1..shape_s.find(')').ok_or("bad shape in the .npy header")?];
    let shape: Vec<usize> =
        shape_s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|_| format!("bad shape entry {s}"))).collect::<Result<_, _>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        _ => return Err(format!("expected a 1-D or 2-D array, found shape {shape:?}")),
    };
    let body = &b[start + hlen..];
    if body.len() < rows * cols * width {
        return Err(format!("the data is truncated: {} bytes for shape {shape:?}", body.len()));
    }
    let data = if width == 4 {
        body.chunks_exact(4).take(rows * cols).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        body.chunks_exact(8).take(rows * cols).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
    };
    Ok(Matrix { rows, cols, data })
}

/// Writes a 2-D f32 `.npy` (used by tests and examples).
pub fn npy_bytes(m: &Matrix) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", m.rows, m.cols);
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &m.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn tensor_f32(t: &safetensors::tensor::TensorView) -> Result<Vec<f32>, String> {
    use safetensors::Dtype;
    let d = t.data();
    Ok(match t.dtype() {
        Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        Dtype::F16 => d.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        Dtype::BF16 => d.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect(),
        other => return Err(format!("dtype {other:?} is not supported (F32, F64, F16, BF16)")),
    })
}

fn f16_to_f32(h: u16) -> f32 {
    let s = ((h >> 15) as u32) << 31;
    let e = ((h >> 10) & 0x1F) as i32;
    let m = (h & 0x3FF) as u32;
    let v = if e == 0 {
        (m as f32) * 2f32.powi(-24)
    } else if e == 31 {
        if m == 0 {
            f32::INFINITY
        } else {
            f32::NAN
        }
    } else {
        f32::from_bits(((e + 112) as u32) << 23 | m << 13)
    };
    f32::from_bits(v.to_bits() | s)
}

/// Reads one 2-D tensor from a `.safetensors` file (`name`, or the only 2-D tensor).
pub fn read_safetensors_matrix(path: &Path, name: Option<&str>) -> Result<Matrix, WorkloadError> {
    let bytes = read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(path, format!("not a valid safetensors file: {e}")))?;
    let names: Vec<String> = st.names().into_iter().filter(|n| st.tensor(n).map(|t| t.shape().len() == 2).unwrap_or(false)).map(str::to_string).collect();
    let pick = match name {
        Some(n) => n.to_string(),
        None if names.len() == 1 => names[0].clone(),
        None => return Err(err(path, format!("holds {} matrices ({}); choose one with --tensor NAME", names.len(), names.join(", ")))),
    };
    let t = st.tensor(&pick).map_err(|_| err(path, format!("has no tensor named {pick}; it holds {}", names.join(", "))))?;
    if t.shape().len() != 2 {
        return Err(err(path, format!("tensor {pick} has shape {:?}; a weight matrix must be 2-D", t.shape())));
    }
    let data = tensor_f32(&t).map_err(|m| err(path, format!("tensor {pick}: {m}")))?;
    Ok(Matrix { rows: t.shape()[0], cols: t.shape()[1], data })
}

/// A weight matrix from `.npy` or `.safetensors` (by extension).
pub fn read_matrix(path: &Path, name: Option<&str>) -> Result<Matrix, WorkloadError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => read_npy(path),
        Some("safetensors") => read_safetensors_matrix(path, name),
        _ => Err(err(path, "unknown format: use a .npy or .safetensors file")),
    }
}

/// One Linear layer of a PyTorch state dict: weight [out, in], optional bias [out].
#[derive(Clone, Debug)]
pub struct Linear {
    pub name: String,
    pub weight: Matrix,
    pub bias: Vec<f32>,
}

/// The Linear layers of a PyTorch state dict, in module order: every `PREFIX.weight` of rank 2
/// with its `PREFIX.bias`, sorted by the numbers in PREFIX (`0`, `2`, `10`, `layers.1`, ...).
pub fn read_state_dict(path: &Path) -> Result<Vec<Linear>, WorkloadError> {
    let bytes = read(path)?;
    parse_state_dict(&bytes).map_err(|m| err(path, m))
}

pub fn parse_state_dict(bytes: &[u8]) -> Result<Vec<Linear>, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let mut prefixes: Vec<String> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_suffix(".weight").map(str::to_string))
        .filter(|p| st.tensor(&format!("{p}.weight")).map(|t| t.shape().len() == 2).unwrap_or(false))
        .collect();
    if prefixes.is_empty() {
        return Err("has no Linear layers (no 2-D tensor named PREFIX.weight); save model.state_dict() of an MLP".into());
    }
    let key = |p: &str| -> Vec<(u64, String)> { p.split('.').map(|s| (s.parse::<u64>().unwrap_or(u64::MAX), s.to_string())).collect() };
    prefixes.sort_by_key(|p| key(p));
    let mut out = Vec::new();
    for p in prefixes {
        let t = st.tensor(&format!("{p}.weight")).unwrap();
        let w = Matrix { rows: t.shape()[0], cols: t.shape()[1], data: tensor_f32(&t).map_err(|m| format!("{p}.weight: {m}"))? };
        let bias = match st.tensor(&format!("{p}.bias")) {
            Ok(b) => {
                if b.shape() != [w.rows] {
                    return Err(format!("{p}.bias has shape {:?} but {p}.weight has {} outputs", b.shape(), w.rows));
                }
                tensor_f32(&b).map_err(|m| format!("{p}.bias: {m}"))?
            }
            Err(_) => vec![0.0; w.rows],
        };
        out.push(Linear { name: p, weight: w, bias });
    }
    for pair in out.windows(2) {
        if pair[0].weight.rows != pair[1].weight.cols {
            return Err(format!(
                "layer {} has {} outputs but the next layer {} expects {} inputs",
                pair[0].name, pair[0].weight.rows, pair[1].name, pair[1].weight.cols
            ));
        }
    }
    Ok(out)
}

/// A labelled data set: row-major features and integer labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
    pub n_features: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Rows `start..end` (the fixed train/test split rules use contiguous ranges).
    pub fn rows(&self, start: usize, end: usize) -> Dataset {
        Dataset { x: self.x[start * self.n_features..end * self.n_features].to_vec(), labels: self.labels[start..end].to_vec(), n_features: self.n_features }
    }
}

/// Reads a CSV data set: features, then the integer label in the last column. A first line that
/// does not parse as numbers (a header) is skipped. Features are divided by `scale`.
pub fn read_csv(path: &Path, scale: f32) -> Result<Dataset, WorkloadError> {
    let text = String::from_utf8(read(path)?).map_err(|_| err(path, "is not UTF-8 text"))?;
    parse_csv(&text, scale).map_err(|m| err(path, m))
}

pub fn parse_csv(text: &str, scale: f32) -> Result<Dataset, String> {
    let mut x = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let nums: Result<Vec<f64>, _> = fields.iter().map(|f| f.parse::<f64>()).collect();
        let Ok(nums) = nums else {
            if i == 0 {
                continue; // header
            }
            return Err(format!("line {}: a field is not a number", i + 1));
        };
        if nums.len() < 2 {
            return Err(format!("line {}: need at least one feature and a label", i + 1));
        }
        match width {
            None => width = Some(nums.len()),
            Some(w) if w != nums.len() => return Err(format!("line {}: {} fields, but earlier rows have {w}", i + 1, nums.len())),
            _ => {}
        }
        let lab = *nums.last().unwrap();
        if lab < 0.0 || lab.fract() != 0.0 {
            return Err(format!("line {}: the label {lab} in the last column is not a class index (0, 1, 2, ...)", i + 1));
        }
        labels.push(lab as u32);
        x.extend(nums[..nums.len() - 1].iter().map(|&v| (v / scale as f64) as f32));
    }
    let Some(w) = width else {
        return Err("has no data rows".into());
    };
    Ok(Dataset { x, labels, n_features: w - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip() {
        let m = Matrix { rows: 2, cols: 3, data: vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.0] };
        assert_eq!(parse_npy(&npy_bytes(&m)).unwrap(), m);
        assert!(parse_npy(b"hello world").unwrap_err().contains("numpy.save"));
    }

    #[test]
    fn shipped_model_is_a_state_dict() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/models/digits_mlp.safetensors")).unwrap();
        let layers = parse_state_dict(&bytes).unwrap();
        let names: Vec<_> = layers.iter().map(|l| (l.name.as_str(), l.weight.rows, l.weight.cols)).collect();
        assert_eq!(names, vec![("0", 64, 64), ("2", 10, 64)]);
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert!(parse_csv("1,2,0\n3,4\n", 1.0).unwrap_err().contains("line 2"));
        assert!(parse_csv("a,b,label\n1,2,0.5\n", 1.0).unwrap_err().contains("line 2"));
        let d = parse_csv("f1,f2,label\n1,2,0\n3,4,1\n", 2.0).unwrap();
        assert_eq!((d.len(), d.n_features, d.x[3]), (2, 2, 2.0));
    }
}
