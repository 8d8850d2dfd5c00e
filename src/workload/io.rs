//! Model and data files: `.npy` matrices (NumPy format 1.0/2.0, little-endian f32/f64, C order),
//! `.npz` archives of them (`numpy.savez`, stored or deflated),
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
    crate::files::read(path).map_err(|e| err(path, format!("cannot read it ({e}); check the path")))
}

/// The array `name` of a `.npz` archive (`numpy.savez(path, x=..., y=...)` stores it as
/// `name.npy`), read as [`parse_npy`] reads a `.npy`. A missing name is an error that lists the
/// archive's arrays.
pub fn read_npz_array(path: &Path, name: &str) -> Result<Matrix, WorkloadError> {
    parse_npz_array(&read(path)?, name).map_err(|m| err(path, m))
}

/// [`read_npz_array`] on the bytes of an archive.
pub fn parse_npz_array(bytes: &[u8], name: &str) -> Result<Matrix, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a valid .npz (zip) archive ({e}); save it with numpy.savez"))?;
    let names: Vec<String> = zip.file_names().filter_map(|n| n.strip_suffix(".npy")).map(str::to_string).collect();
    let Ok(mut entry) = zip.by_name(&format!("{name}.npy")) else {
        let held = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        return Err(format!("has no array named {name:?}; it holds {held}"));
    };
    // Read no more than the entry declares (a corrupt or hostile archive cannot inflate past it).
    let size = entry.size();
    let mut out = Vec::with_capacity(size.min(bytes.len() as u64 * 8) as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, size.saturating_add(1)), &mut out)
        .map_err(|e| format!("array {name}: cannot decompress it ({e})"))?;
    if out.len() as u64 != size {
        return Err(format!("array {name}: {} bytes where the archive declares {size}; the file is damaged", out.len()));
    }
    parse_npy(&out).map_err(|m| format!("array {name}: {m}"))
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
    let dtype = descr.split(['\'', '"']).next().unwrap_or("?");
    let kind = NpyKind::parse(dtype).ok_or_else(|| {
        format!(
            "dtype {dtype} is not supported: use a little-endian float (f2, f4, f8), integer (i1..i8, u1..u8) or bool array, e.g. arr.astype(numpy.float32)"
        )
    })?;
    let width = kind.width();
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
    if rows == 0 || cols == 0 {
        return Err(format!("shape {shape:?} is empty: a weight matrix needs at least one row and one column"));
    }
    let body = &b[start + hlen..];
    // Checked: a header may claim any size.
    let need = rows.checked_mul(cols).and_then(|n| n.checked_mul(width)).ok_or_else(|| format!("shape {shape:?} is too large"))?;
    if body.len() < need {
        return Err(format!("the data is truncated: {} bytes for shape {shape:?} ({need} needed)", body.len()));
    }
    // More data than the shape holds: the header's shape is wrong, or the file was appended to.
    if body.len() > need {
        return Err(format!("{} bytes of data for shape {shape:?}, which holds {need}: the shape in the header does not match the data", body.len()));
    }
    let data: Vec<f32> = body.chunks_exact(width).take(rows * cols).map(|c| kind.value(c)).collect();
    if kind.is_integer() {
        // Integers convert exactly up to 2^24 (labels and counts); beyond, f32 would round them.
        if let Some(i) = data.iter().position(|v| v.abs() > (1u32 << 24) as f32) {
            return Err(format!("element [{}, {}] = {}: integers above 2^24 do not convert exactly to f32", i / cols, i % cols, data[i]));
        }
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!("element [{}, {}] = {}: weights must be finite", i / cols, i % cols, data[i]));
    }
    Ok(Matrix { rows, cols, data })
}

/// The element types `.npy` files are read in: every little-endian float, integer and bool dtype
/// NumPy writes (`<f8` and `<i8` are its defaults), converted to f32.
#[derive(Clone, Copy, Debug, PartialEq)]
enum NpyKind {
    F16,
    F32,
    F64,
    Int(usize),
    Uint(usize),
    Bool,
}

impl NpyKind {
    /// `<f4`, `|u1`, `<i8`, `|b1`, ... (`=` is native order, little-endian on every supported
    /// platform); big-endian (`>`) is refused.
    fn parse(dtype: &str) -> Option<NpyKind> {
        let rest = dtype.strip_prefix(['<', '|', '='])?;
        let (k, n) = rest.split_at(1);
        let n: usize = n.parse().ok()?;
        match (k, n) {
            ("f", 2) => Some(NpyKind::F16),
            ("f", 4) => Some(NpyKind::F32),
            ("f", 8) => Some(NpyKind::F64),
            ("i", 1 | 2 | 4 | 8) => Some(NpyKind::Int(n)),
            ("u", 1 | 2 | 4 | 8) => Some(NpyKind::Uint(n)),
            ("b", 1) => Some(NpyKind::Bool),
            _ => None,
        }
    }

    fn width(self) -> usize {
        match self {
            NpyKind::F16 => 2,
            NpyKind::F32 => 4,
            NpyKind::F64 => 8,
            NpyKind::Int(n) | NpyKind::Uint(n) => n,
            NpyKind::Bool => 1,
        }
    }

    fn is_integer(self) -> bool {
        matches!(self, NpyKind::Int(_) | NpyKind::Uint(_))
    }

    /// One element of `width()` little-endian bytes as f32.
    fn value(self, c: &[u8]) -> f32 {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        let u = u64::from_le_bytes(b);
        match self {
            NpyKind::F16 => f16_to_f32(u as u16),
            NpyKind::F32 => f32::from_bits(u as u32),
            NpyKind::F64 => f64::from_bits(u) as f32,
            // Sign-extend from the element's width.
            NpyKind::Int(n) => (((u << (64 - 8 * n)) as i64) >> (64 - 8 * n)) as f32,
            NpyKind::Uint(_) => u as f32,
            NpyKind::Bool => (u != 0) as u8 as f32,
        }
    }
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

/// A float tensor (F32, F64, F16, BF16) as f32 values; other dtypes are refused.
pub(crate) fn tensor_f32(t: &safetensors::tensor::TensorView) -> Result<Vec<f32>, String> {
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
    parse_safetensors_matrix(&read(path)?, name).map_err(|m| err(path, m))
}

/// [`read_safetensors_matrix`] on a file's bytes (read once for many tensors).
pub fn parse_safetensors_matrix(bytes: &[u8], name: Option<&str>) -> Result<Matrix, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    // Matrices: Linear weights (2-D) and Conv2d kernels (4-D), which map to the crossbar matrix
    // [out, in_c · k_h · k_w] (aihwkit's mapping, PyTorch's `weight.view(out, -1)`).
    let mut names: Vec<String> =
        st.names().into_iter().filter(|n| st.tensor(n).map(|t| matches!(t.shape().len(), 2 | 4)).unwrap_or(false)).map(str::to_string).collect();
    names.sort();
    let pick = match name {
        Some(n) => n.to_string(),
        None if names.len() == 1 => names[0].clone(),
        None => return Err(format!("holds {} matrices ({}); choose one with --tensor NAME", names.len(), names.join(", "))),
    };
    let t = st.tensor(&pick).map_err(|_| format!("has no tensor named {pick}; it holds {}", names.join(", ")))?;
    if !matches!(t.shape().len(), 2 | 4) {
        return Err(format!("tensor {pick} has shape {:?}; a weight matrix must be 2-D (Linear) or 4-D (a Conv2d kernel)", t.shape()));
    }
    let (rows, cols) = (t.shape()[0], t.shape()[1..].iter().product::<usize>());
    if rows == 0 || cols == 0 {
        return Err(format!("tensor {pick} has shape {:?}: a weight matrix needs at least one row and one column", t.shape()));
    }
    let data = tensor_f32(&t).map_err(|m| format!("tensor {pick}: {m}"))?;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!("tensor {pick}[{}, {}] = {}: weights must be finite", i / cols, i % cols, data[i]));
    }
    Ok(Matrix { rows, cols, data })
}

/// A 1-D tensor (a bias) of a `.safetensors` file's bytes: `None` when the file has no tensor
/// `name`; an error when it is not 1-D or holds a non-finite value.
pub fn parse_safetensors_vector(bytes: &[u8], name: &str) -> Result<Option<Vec<f32>>, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let Ok(t) = st.tensor(name) else { return Ok(None) };
    if t.shape().len() != 1 {
        return Err(format!("tensor {name} has shape {:?}; a bias must be 1-D", t.shape()));
    }
    let data = tensor_f32(&t).map_err(|m| format!("tensor {name}: {m}"))?;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!("tensor {name}[{i}] = {}: biases must be finite", data[i]));
    }
    Ok(Some(data))
}

/// A weight matrix from `.npy` or `.safetensors` (by extension).
pub fn read_matrix(path: &Path, name: Option<&str>) -> Result<Matrix, WorkloadError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => read_npy(path),
        Some("safetensors") => read_safetensors_matrix(path, name),
        _ => Err(err(path, "unknown format: use a .npy or .safetensors file")),
    }
}

/// One layer of a PyTorch state dict: a Linear layer, weight [out, in], or a Conv2d layer,
/// weight [out, in_c, k_h, k_w] held flattened as [out, in_c · k_h · k_w] (PyTorch's
/// `weight.view(out, -1)`, the crossbar matrix aihwkit programs); optional bias `[out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub name: String,
    pub weight: Matrix,
    pub bias: Vec<f32>,
    /// A Conv2d's geometry (its image size comes from `[model] input_shape`); None: Linear.
    pub conv: Option<super::Conv2d>,
    /// The layer's input ranges (tensor `PREFIX.input_range`, aihwkit's learned
    /// `pre_post.input_range`): one for every tile, or one per input tile; empty: none.
    pub input_range: Vec<f32>,
    /// A residual network's shortcuts (`[model] layers` tables' `input` and `add`): indices
    /// of earlier layers; default, the plain chain.
    pub links: crate::engine::plan::Links,
    /// An inference BatchNorm after the layer, kept digital (`[model] layers` tables'
    /// `batchnorm`): per output channel the scale γ/√(σ² + ε), then the shift β − scale·μ.
    pub batchnorm: Option<Vec<f32>>,
}

impl Linear {
    /// A Linear layer.
    pub fn dense(name: impl Into<String>, weight: Matrix, bias: Vec<f32>) -> Linear {
        Linear { name: name.into(), weight, bias, conv: None, input_range: Vec::new(), links: Default::default(), batchnorm: None }
    }

    /// Input `col` of the weight matrix (a convolution's unfolded patch column) clipped to the
    /// input range of the input tile that holds it (k ranges split the columns as the tiles
    /// do, whatever the tile shape that gives k tiles); unchanged without ranges.
    pub fn clip_input(&self, col: usize, v: f64) -> f64 {
        let r = match self.input_range.len() {
            0 => return v,
            1 => self.input_range[0],
            k => self.input_range[crate::crossbar::split_index(self.weight.cols as u32, k as u32, col as u32) as usize],
        } as f64;
        v.clamp(-r, r)
    }

    /// Values per sample the layer reads: an image (C · H · W) or a vector.
    pub fn inputs(&self) -> usize {
        self.conv.map_or(self.weight.cols, |c| c.in_c * c.in_h * c.in_w)
    }
}

/// The Linear layers of a PyTorch state dict, in module order (see [`parse_state_dict_with`]).
pub fn read_state_dict(path: &Path) -> Result<Vec<Linear>, WorkloadError> {
    read_state_dict_with(path, &StateDictOptions::default())
}

/// How a state dict is read: an explicit layer order, and whether tensors that are not the
/// layers' weights and biases may be left unused.
#[derive(Clone, Debug, Default)]
pub struct StateDictOptions {
    /// Layer prefixes in order (`[model] layers`); empty: from the numeric index of the keys.
    pub layers: Vec<String>,
    /// Leave other tensors (BatchNorm, embeddings, ...) unused instead of refusing the file.
    pub allow_extra: bool,
    /// Each listed layer's shortcuts (`[model] layers` tables' `input` and `add`, resolved to
    /// indices); empty: the plain chain.
    pub links: Vec<crate::engine::plan::Links>,
    /// Each listed layer's digital BatchNorm (`[model] layers` tables' `batchnorm` and
    /// `batchnorm_eps`): the prefix of its tensors and ε; empty: none.
    pub batchnorms: Vec<Option<(String, f64)>>,
}

pub fn read_state_dict_with(path: &Path, opt: &StateDictOptions) -> Result<Vec<Linear>, WorkloadError> {
    let bytes = read(path)?;
    parse_state_dict_with(&bytes, opt).map_err(|m| err(path, m))
}

pub fn parse_state_dict(bytes: &[u8]) -> Result<Vec<Linear>, String> {
    parse_state_dict_with(bytes, &StateDictOptions::default())
}

/// Linear layers of a PyTorch state dict. The order comes from the numeric index of the keys
/// (`0.weight`, `2.weight`, `10.weight`) or from `opt.layers`, never from string order; every
/// tensor is a used weight, bias or input range (or `opt.allow_extra`); weights are 2-D (4-D for
/// a Conv2d), non-empty and finite; an input range (`PREFIX.input_range`, aihwkit's learned
/// `pre_post.input_range`) holds one value for the layer or one per input tile, each > 0.
pub fn parse_state_dict_with(bytes: &[u8], opt: &StateDictOptions) -> Result<Vec<Linear>, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let names = st.names();
    let mut prefixes: Vec<String> = names.iter().filter_map(|n| n.strip_suffix(".weight").map(str::to_string)).collect();
    if prefixes.is_empty() {
        return Err("has no Linear layers (no tensor named PREFIX.weight); save model.state_dict() of an MLP".into());
    }
    if !opt.layers.is_empty() {
        for l in &opt.layers {
            if !prefixes.contains(l) {
                return Err(format!("model.layers names {l:?}, but there is no tensor {l}.weight (the file has {})", prefixes.join(", ")));
            }
        }
        prefixes = opt.layers.clone();
    } else {
        // Numeric order only where the names differ in numbers alone (nn.Sequential keys);
        // "hidden1, hidden10, hidden2" has no order a file can state.
        let split: Vec<Vec<&str>> = prefixes.iter().map(|p| p.split('.').collect()).collect();
        let depth = split.iter().map(Vec::len).max().unwrap_or(0);
        for d in 0..depth {
            let texts: std::collections::BTreeSet<&str> = split.iter().filter_map(|s| s.get(d).copied()).filter(|x| x.parse::<u64>().is_err()).collect();
            if texts.len() > 1 || (texts.len() == 1 && split.iter().any(|s| s.get(d).is_some_and(|x| x.parse::<u64>().is_ok()))) {
                let mut sorted = prefixes.clone();
                sorted.sort();
                return Err(format!(
                    "the layer order cannot be read from the names {} (they differ in more than a numeric index); list them in the experiment: [model] layers = [{}]",
                    sorted.join(", "),
                    sorted.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let key = |p: &str| -> Vec<(u64, String)> { p.split('.').map(|s| (s.parse::<u64>().unwrap_or(u64::MAX), s.to_string())).collect() };
        prefixes.sort_by_key(|p| key(p));
    }
    let mut used = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for p in prefixes {
        let t = st.tensor(&format!("{p}.weight")).map_err(|e| format!("{p}.weight: {e}"))?;
        if t.shape().len() != 2 && t.shape().len() != 4 {
            return Err(format!(
                "{p}.weight has shape {:?}: a Linear weight is 2-D (out x in), a Conv2d weight 4-D (out x in x kh x kw); list the layers in [model] layers = [...]",
                t.shape()
            ));
        }
        if t.shape().contains(&0) {
            return Err(format!("{p}.weight has shape {:?}: a layer needs at least one input and one output", t.shape()));
        }
        let data = tensor_f32(&t).map_err(|m| format!("{p}.weight: {m}"))?;
        let sh = t.shape();
        let (rows, cols) = (sh[0], sh[1..].iter().product::<usize>());
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!("{p}.weight[{}, {}] = {}: weights must be finite", i / cols, i % cols, data[i]));
        }
        // Stride, padding, pooling and the image size come from the experiment (`[model]`).
        let conv = (sh.len() == 4).then(|| super::Conv2d { in_c: sh[1], k_h: sh[2], k_w: sh[3], ..super::Conv2d::default() });
        used.insert(format!("{p}.weight"));
        let w = Matrix { rows, cols, data };
        let bias = match st.tensor(&format!("{p}.bias")) {
            Ok(b) => {
                if b.shape() != [w.rows] {
                    return Err(format!("{p}.bias has shape {:?} but {p}.weight has {} outputs", b.shape(), w.rows));
                }
                let v = tensor_f32(&b).map_err(|m| format!("{p}.bias: {m}"))?;
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(format!("{p}.bias[{i}] = {}: biases must be finite", v[i]));
                }
                used.insert(format!("{p}.bias"));
                v
            }
            Err(_) => vec![0.0; w.rows],
        };
        let input_range = match st.tensor(&format!("{p}.input_range")) {
            Ok(r) => {
                used.insert(format!("{p}.input_range"));
                input_range_values(&format!("{p}.input_range"), &r)?
            }
            Err(_) => Vec::new(),
        };
        let links = opt.links.get(out.len()).copied().unwrap_or_default();
        let batchnorm = match opt.batchnorms.get(out.len()).cloned().flatten() {
            Some((bn, eps)) => Some(batchnorm(&st, &bn, eps, &p, w.rows, &mut used)?),
            None => None,
        };
        out.push(Linear { name: p, weight: w, bias, conv, input_range, links, batchnorm });
    }
    let extra: Vec<String> = names.iter().map(|n| n.to_string()).filter(|n| !used.contains(n)).collect();
    if !extra.is_empty() && !opt.allow_extra {
        return Err(format!(
            "tensors {} are not the weight or bias of a Linear layer used here; set [model] allow_extra = true to leave them unused, or list the layers in [model] layers = [...]",
            extra.join(", ")
        ));
    }
    // Convolutions are chained by their image shapes (`workload::set_geometry`); a Linear layer
    // reads the layer before it, or the one its `input` names.
    for (i, l) in out.iter().enumerate().skip(1).filter(|(_, l)| l.conv.is_none()) {
        let Some(src) = out[..i].get(l.links.input.unwrap_or(i - 1)) else {
            return Err(format!("layer {} reads a layer listed after it; a shortcut comes from an earlier layer", l.name));
        };
        if src.conv.is_none() && src.weight.rows != l.weight.cols {
            let next = if l.links.input.is_some() { "the layer reading it" } else { "the next layer" };
            return Err(format!("layer {} has {} outputs but {next} {} expects {} inputs", src.name, src.weight.rows, l.name, l.weight.cols));
        }
    }
    Ok(out)
}

/// Layer `layer`'s inference BatchNorm from PyTorch's `nn.BatchNorm2d`/`1d` tensors under `bn`:
/// `weight` (γ) and `bias` (β), both or neither (affine=False), `running_mean` and `running_var`,
/// one per output channel; `num_batches_tracked` is read as used. Returns the per-channel scale
/// γ/√(σ² + ε) and then the shift β − scale·μ, computed in f64.
fn batchnorm(
    st: &safetensors::SafeTensors,
    bn: &str,
    eps: f64,
    layer: &str,
    channels: usize,
    used: &mut std::collections::BTreeSet<String>,
) -> Result<Vec<f32>, String> {
    let mut read = |part: &str| -> Result<Option<Vec<f32>>, String> {
        let name = format!("{bn}.{part}");
        let Ok(t) = st.tensor(&name) else { return Ok(None) };
        if t.shape() != [channels] {
            return Err(format!(
                "{name} has shape {:?}, but layer {layer} has {channels} output channels: the BatchNorm after it has one value per channel",
                t.shape()
            ));
        }
        let v = tensor_f32(&t).map_err(|m| format!("{name}: {m}"))?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!("{name}[{i}] = {}: BatchNorm statistics and parameters must be finite", v[i]));
        }
        used.insert(name);
        Ok(Some(v))
    };
    let missing = |part: &str| {
        format!("layer {layer}: batchnorm = {bn:?} but the file has no {bn}.{part}; name the BatchNorm whose running statistics follow this layer (e.g. \"bn1\", \"downsample.1\")")
    };
    let mean = read("running_mean")?.ok_or_else(|| missing("running_mean"))?;
    let var = read("running_var")?.ok_or_else(|| missing("running_var"))?;
    if let Some(i) = var.iter().position(|&v| v < 0.0) {
        return Err(format!("{bn}.running_var[{i}] = {}: a variance cannot be negative", var[i]));
    }
    let (gamma, beta) = match (read("weight")?, read("bias")?) {
        (Some(g), Some(b)) => (g, b),
        (None, None) => (vec![1.0; channels], vec![0.0; channels]),
        (g, _) => return Err(missing(if g.is_none() { "weight" } else { "bias" })),
    };
    if st.tensor(&format!("{bn}.num_batches_tracked")).is_ok() {
        used.insert(format!("{bn}.num_batches_tracked"));
    }
    let scale: Vec<f64> = (0..channels).map(|c| gamma[c] as f64 / (var[c] as f64 + eps).sqrt()).collect();
    let shift = (0..channels).map(|c| beta[c] as f64 - scale[c] * mean[c] as f64);
    Ok(scale.iter().map(|&s| s as f32).chain(shift.map(|t| t as f32)).collect())
}

/// The values of the input-range tensor `name` (aihwkit's learned `pre_post.input_range`, beside
/// a layer's weight): shape [] or [k] (one for the layer, or one per input tile), each finite and
/// > 0. Classifier and transformer state dicts read them here.
pub(crate) fn input_range_values(name: &str, t: &safetensors::tensor::TensorView) -> Result<Vec<f32>, String> {
    if t.shape().len() > 1 || t.shape() == [0] {
        return Err(format!("{name} has shape {:?}: give one input range for the layer (shape [] or [1]) or one per input tile (shape [tiles])", t.shape()));
    }
    let v = tensor_f32(t).map_err(|m| format!("{name}: {m}"))?;
    if let Some(i) = v.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
        return Err(format!("{name}[{i}] = {}: an input range must be a finite number > 0 (the layer's inputs are clipped to ±range)", v[i]));
    }
    Ok(v)
}

/// A labelled data set: row-major features and integer labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
    pub n_features: usize,
    /// Question answering: every labelled answer of every row, `[row][answer]`, each packed as
    /// start · n_features + end (`labels` holds each row's first); empty for other data.
    pub spans: Vec<u32>,
    /// Question answering scored by SQuAD's official metrics: the questions' contexts and
    /// answers as text, and each row's question and token offsets (`data.answer_text`).
    pub text: Option<std::sync::Arc<crate::workload::transformer::squad::AnswerText>>,
    /// A regression data set's real-valued target per row (GLUE's STS-B similarity); `labels`
    /// is then all 0. Empty for other data.
    pub targets: Vec<f32>,
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
        let k = self.answers();
        Dataset {
            x: self.x[start * self.n_features..end * self.n_features].to_vec(),
            labels: self.labels[start..end].to_vec(),
            n_features: self.n_features,
            spans: self.spans.get(start * k..end * k).map(<[u32]>::to_vec).unwrap_or_default(),
            text: None,
            targets: self.targets.get(start..end).map(<[f32]>::to_vec).unwrap_or_default(),
        }
    }

    /// Labelled answers per row (0 for data without answer spans).
    pub fn answers(&self) -> usize {
        self.spans.len().checked_div(self.labels.len()).unwrap_or(0)
    }
}

/// Reads a CSV data set: features, then the integer label in the last column. A first line that
/// does not parse as numbers (a header) is skipped. Features are divided by `scale`.
pub fn read_csv(path: &Path, scale: f32) -> Result<Dataset, WorkloadError> {
    read_csv_with(path, scale, false)
}

/// As [`read_csv`]; `header`: the first line names the columns and is skipped (never guessed).
pub fn read_csv_with(path: &Path, scale: f32, header: bool) -> Result<Dataset, WorkloadError> {
    let text = String::from_utf8(read(path)?).map_err(|_| err(path, "is not UTF-8 text"))?;
    parse_csv_with(&text, scale, header).map_err(|m| err(path, m))
}

pub fn parse_csv(text: &str, scale: f32) -> Result<Dataset, String> {
    parse_csv_with(text, scale, false)
}

/// Features, then the integer label, on every line; a UTF-8 byte-order mark is dropped; a header
/// line only where `header` says so; every feature finite.
pub fn parse_csv_with(text: &str, scale: f32, header: bool) -> Result<Dataset, String> {
    parse_rows(text, scale, header, true)
}

/// A CSV whose every column is a feature (a language model's token sequences): no label column;
/// the rows' labels are 0.
pub fn read_csv_unlabelled(path: &Path, header: bool) -> Result<Dataset, WorkloadError> {
    let text = String::from_utf8(read(path)?).map_err(|_| err(path, "is not UTF-8 text"))?;
    parse_rows(&text, 1.0, header, false).map_err(|m| err(path, m))
}

/// [`parse_csv_with`], the last column the label when `labelled`, else a feature.
fn parse_rows(text: &str, scale: f32, header: bool, labelled: bool) -> Result<Dataset, String> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!("scale = {scale}: features are divided by it; it must be a finite number > 0"));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut x = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        if header && i == 0 {
            // A header is never guessed, so neither is its absence: a first line of numbers
            // would be a data row dropped. Column indices 0, 1, 2, ... are pandas' header of a
            // frame without column names (`DataFrame(x).to_csv(index=False)`), so they pass.
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let indices = fields.iter().enumerate().all(|(k, f)| f.parse::<usize>() == Ok(k));
            if !line.trim().is_empty() && !indices && fields.iter().all(|f| f.parse::<f64>().is_ok()) {
                return Err(
                    "the first line is numeric, but header = true would drop it as the column names: it is a data row; set header = false (data.header), or add the header line".into()
                );
            }
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let mut nums = Vec::with_capacity(fields.len());
        for (c, f) in fields.iter().enumerate() {
            let v: f64 = f.parse().map_err(|_| {
                let hint = if i == 0 { " (if the first line names the columns, set header = true)" } else { "" };
                format!("line {}, column {}: {f:?} is not a number{hint}", i + 1, c + 1)
            })?;
            if !v.is_finite() {
                return Err(format!("line {}, column {}: {f} is not a finite number", i + 1, c + 1));
            }
            nums.push(v);
        }
        if labelled && nums.len() < 2 {
            return Err(format!("line {}: need at least one feature and a label", i + 1));
        }
        match width {
            None => width = Some(nums.len()),
            Some(w) if w != nums.len() => return Err(format!("line {}: {} fields, but earlier rows have {w}", i + 1, nums.len())),
            _ => {}
        }
        let features = if labelled {
            let lab = *nums.last().unwrap();
            if lab < 0.0 || lab.fract() != 0.0 || lab > u32::MAX as f64 {
                return Err(format!("line {}: the label {lab} in the last column is not a class index (0, 1, 2, ...)", i + 1));
            }
            labels.push(lab as u32);
            &nums[..nums.len() - 1]
        } else {
            labels.push(0);
            &nums[..]
        };
        for (c, &v) in features.iter().enumerate() {
            let xv = (v / scale as f64) as f32;
            if !xv.is_finite() {
                return Err(format!(
                    "line {}, column {}: {} divided by the scale {scale} is beyond the range of 32-bit floats (±3.4e38); give a larger scale (data.scale)",
                    i + 1,
                    c + 1,
                    fields[c]
                ));
            }
            x.push(xv);
        }
    }
    let Some(w) = width else {
        return Err("has no data rows".into());
    };
    Ok(Dataset { x, labels, n_features: w - usize::from(labelled), spans: vec![], text: None, targets: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` of dtype `descr` and `shape` (header padded to 64 bytes), then `body`.
    fn npy_with(descr: &str, shape: &str, body: Vec<u8>) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(body);
        b
    }

    #[test]
    fn npy_sizes_are_checked_and_values_finite() {
        let header = |shape: &str| npy_with("<f4", shape, vec![]);
        let mut b = header("(4611686018427387905, 4)");
        b.extend(vec![0u8; 16 * 1024]);
        assert!(parse_npy(&b).unwrap_err().contains("too large"));
        assert!(parse_npy(&header("(0, 4)")).unwrap_err().contains("empty"));
        // Bytes past the data the shape holds are refused, not dropped.
        assert!(parse_npy(&npy_with("<f4", "(2,)", vec![0; 12])).unwrap_err().contains("does not match the data"));
        let mut b = header("(1, 2)");
        b.extend(1.0f32.to_le_bytes());
        b.extend(f32::INFINITY.to_le_bytes());
        assert!(parse_npy(&b).unwrap_err().contains("[0, 1] = inf"));
    }

    /// Every dtype NumPy writes by default: int64 labels, float64 features, and the other widths.
    #[test]
    fn npy_reads_integer_bool_and_half_dtypes() {
        let npy = npy_with;
        let ints: Vec<u8> = [3i64, -2, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(&npy("<i8", "(3,)", ints)).unwrap().data, [3.0, -2.0, 9.0]);
        let ints: Vec<u8> = [-7i32, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(&npy("<i4", "(2,)", ints)).unwrap().data, [-7.0, 1.0]);
        assert_eq!(parse_npy(&npy("|i1", "(2,)", vec![0xFF, 5])).unwrap().data, [-1.0, 5.0]);
        assert_eq!(parse_npy(&npy("|u1", "(2,)", vec![0xFF, 5])).unwrap().data, [255.0, 5.0]);
        assert_eq!(parse_npy(&npy("<u2", "(1,)", 40000u16.to_le_bytes().to_vec())).unwrap().data, [40000.0]);
        assert_eq!(parse_npy(&npy("|b1", "(3,)", vec![1, 0, 1])).unwrap().data, [1.0, 0.0, 1.0]);
        // Half: 1.5 = 0x3E00, -2 = 0xC000.
        let halves: Vec<u8> = [0x3E00u16, 0xC000].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(&npy("<f2", "(2,)", halves)).unwrap().data, [1.5, -2.0]);
        let big: Vec<u8> = (1i64 << 40).to_le_bytes().to_vec();
        assert!(parse_npy(&npy("<i8", "(1,)", big)).unwrap_err().contains("2^24"));
        for bad in [">f4", "<c8", "<U3", "|O"] {
            let e = parse_npy(&npy(bad, "(1,)", vec![0; 8])).unwrap_err();
            assert!(e.contains(&format!("dtype {bad} is not supported")), "{bad}: {e}");
        }
    }

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
        assert!(parse_csv_with("a,b,label\n1,2,0.5\n", 1.0, true).unwrap_err().contains("line 2"));
        let d = parse_csv_with("f1,f2,label\n1,2,0\n3,4,1\n", 2.0, true).unwrap();
        assert_eq!((d.len(), d.n_features, d.x[3]), (2, 2, 2.0));
        // A header is never guessed: without header = true it is an error that says so.
        let e = parse_csv("f1,f2,label\n1,2,0\n", 1.0).unwrap_err();
        assert!(e.contains("line 1, column 1") && e.contains("header = true"), "{e}");
        // Nor is its absence: header = true over a first line of numbers would drop a data row.
        let e = parse_csv_with("1,2,0\n3,4,1\n", 1.0, true).unwrap_err();
        assert!(e.contains("first line is numeric, but header = true") && e.contains("set header = false"), "{e}");
        assert_eq!(parse_csv_with("1,b,label\n3,4,1\n", 1.0, true).unwrap().len(), 1, "one name among numbers is a header");
        // pandas' header of a frame without column names (0, 1, 2, ...) is a header.
        assert_eq!(parse_csv_with("0,1,2\n3,4,1\n", 1.0, true).unwrap().len(), 1, "column indices are a header");
        assert!(parse_csv_with("0,1,1\n3,4,1\n", 1.0, true).is_err(), "not indices: a data row");
        // A byte-order mark is dropped, not taken for a header that loses the row.
        let d = parse_csv("\u{feff}1,2,0\n3,4,1\n", 1.0).unwrap();
        assert_eq!((d.len(), d.x[0]), (2, 1.0));
        // Non-finite features and a bad scale are refused with their place.
        assert!(parse_csv("1,nan,0\n", 1.0).unwrap_err().contains("line 1, column 2"));
        assert!(parse_csv("1,inf,0\n", 1.0).unwrap_err().contains("not a finite number"));
        // Finite as written, but not as a 32-bit feature once scaled: the cell and the scale.
        let e = parse_csv("1,2,0\n3,1e40,1\n", 1.0).unwrap_err();
        assert!(e.contains("line 2, column 2") && e.contains("data.scale"), "{e}");
        let e = parse_csv("16,0\n", 1e-45).unwrap_err();
        assert!(e.contains("line 1, column 1") && e.contains("32-bit"), "{e}");
        assert!(parse_csv("1,2,0\n", 0.0).unwrap_err().contains("scale"));
    }

    /// A safetensors file from (name, shape, f32 values).
    fn st_bytes(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
        let data: Vec<(String, Vec<u8>, Vec<usize>)> =
            tensors.iter().map(|(n, s, v)| (n.to_string(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), s.clone())).collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            data.iter().map(|(n, b, s)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn state_dicts_are_refused_rather_than_guessed() {
        let lin = |n: &str, o: usize, i: usize| (n.to_string(), vec![o, i], vec![0.5f32; o * i]);
        let named = |v: Vec<(String, Vec<usize>, Vec<f32>)>| st_bytes(&v.iter().map(|(n, s, d)| (n.as_str(), s.clone(), d.clone())).collect::<Vec<_>>());
        // nn.Sequential indices order numerically: 0, 2, 10 (not "0", "10", "2").
        let b = named(vec![lin("0.weight", 3, 4), lin("2.weight", 5, 3), lin("10.weight", 2, 5)]);
        let names: Vec<String> = parse_state_dict(&b).unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["0", "2", "10"]);
        // Names that differ in more than a number: no order is guessed; an explicit list works.
        let b = named(vec![lin("hidden1.weight", 3, 4), lin("hidden10.weight", 2, 5), lin("hidden2.weight", 5, 3)]);
        assert!(parse_state_dict(&b).unwrap_err().contains("[model] layers = ["));
        let opt = StateDictOptions { layers: vec!["hidden1".into(), "hidden2".into(), "hidden10".into()], ..Default::default() };
        assert_eq!(parse_state_dict_with(&b, &opt).unwrap().len(), 3);
        // A weight that is not 2-D, an unused tensor, a zero-size layer, a non-finite weight.
        let b = named(vec![lin("0.weight", 3, 4), ("1.weight".into(), vec![3], vec![1.0; 3])]);
        assert!(parse_state_dict(&b).unwrap_err().contains("1.weight has shape [3]"));
        let b = named(vec![lin("0.weight", 3, 4), ("bn.running_mean".into(), vec![3], vec![0.0; 3])]);
        let e = parse_state_dict(&b).unwrap_err();
        assert!(e.contains("bn.running_mean") && e.contains("allow_extra"), "{e}");
        assert!(parse_state_dict_with(&b, &StateDictOptions { allow_extra: true, ..Default::default() }).is_ok());
        let b = named(vec![("0.weight".into(), vec![0, 4], vec![])]);
        assert!(parse_state_dict(&b).unwrap_err().contains("at least one input and one output"));
        let mut w = lin("0.weight", 2, 2);
        w.2[3] = f32::NAN;
        assert!(parse_state_dict(&named(vec![w])).unwrap_err().contains("0.weight[1, 1] = NaN"));
    }
}
