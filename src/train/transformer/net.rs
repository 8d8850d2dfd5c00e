//! The training transformer's forward and backward passes (the model of
//! src/train/transformer/mod.rs): per sequence the embedding, the shared encoder layer `repeat`
//! times with softmax or FAVOR+ attention, pooling and the classifier, with the traces the
//! backward pass reads; loss, gradients and accuracy.

// Index loops mirror the gradient equations, so the backward pass reads beside them.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use super::*;

/// Transposed weight matrices of one step (the forward pass's layouts).
pub(super) struct Prepared<T> {
    in_proj: Vec<T>,
    out_proj: Vec<T>,
    linear1: Vec<T>,
    linear2: Vec<T>,
    /// The feature projection transposed, [d_h, m/2].
    projection: Vec<T>,
}

/// One application of the encoder layer, kept for the backward pass.
pub(super) struct LayerTrace<T> {
    /// Input [n, d].
    x: Vec<T>,
    /// [n, 3d]: Q, K, V.
    qkv: Vec<T>,
    /// Softmax: probabilities [heads, n, n].
    probs: Vec<T>,
    /// Kernel: features of queries and keys [heads, n, m], Σ_j φ(k_j) v_jᵀ [heads, m, d_h],
    /// Σ_j φ(k_j) [heads, m] (causal: the prefix sums over j ≤ i, one per position i) and the
    /// denominators [heads, n].
    phi_q: Vec<T>,
    phi_k: Vec<T>,
    /// Kernel: the feature projection's outputs h the ADC clipped, per query and key
    /// [heads, n, m/2] (zero gradient).
    clip_q: Vec<bool>,
    clip_k: Vec<bool>,
    kv: Vec<T>,
    z: Vec<T>,
    den: Vec<T>,
    /// Kernel, causal: each position's key shift M_j, the largest key exponent so far [heads, n]
    /// (its φ(k_j) and prefix sums are kept at scale e^−M_j, so no position reads a later key).
    shift: Vec<T>,
    /// Heads' outputs, concatenated [n, d].
    att: Vec<T>,
    xhat1: Vec<T>,
    rstd1: Vec<T>,
    y1: Vec<T>,
    ff_pre: Vec<T>,
    ff_act: Vec<T>,
    xhat2: Vec<T>,
    rstd2: Vec<T>,
    /// The outputs the ADCs of Q/K/V, O and the FFN pair clipped.
    clips: [ClipRows; 4],
}

/// The forward pass of one sequence.
pub(super) struct Trace<T> {
    n: usize,
    xhat0: Vec<T>,
    rstd0: Vec<T>,
    layers: Vec<LayerTrace<T>>,
    pool: Vec<T>,
    c_pre: Vec<T>,
    c_act: Vec<T>,
    logits: Vec<T>,
    /// The outputs the ADCs of the classifier's two layers clipped.
    clips: [ClipRows; 2],
    /// The DAC the forward pass quantised every crossbar input with (0 bits: none): the backward
    /// pass quantises the same inputs again (deterministic) for the weight gradients.
    dac: Dac,
}

impl<T: Real> Net<T> {
    /// A fresh network: embedding N(0, 1/d) (so √d · E has unit scale, as the sinusoids), LayerNorms
    /// (1, 0), `in_proj_weight` Xavier-uniform and `out_proj.bias` 0 (as `nn.MultiheadAttention`),
    /// other Linear layers PyTorch's default uniform ±1/√fan_in; then the feature projection
    /// (kernel attention only, so both attentions start from the same weights).
    pub fn init(dims: Dims, attention: Attention, rng: &mut Pcg64Mcg) -> Net<T> {
        assert!(dims.heads > 0 && dims.d_model.is_multiple_of(dims.heads) && dims.features.is_multiple_of(2), "bad dimensions {dims:?}");
        let names = param_names(&dims);
        let mut params = Vec::with_capacity(N_PARAMS);
        let (m, f, h) = (dims.d_model as f64, dims.d_ff as f64, dims.hidden as f64);
        for (k, (_, shape)) in names.iter().enumerate() {
            let len: usize = shape.iter().product();
            let v: Vec<f64> = match k {
                EMBEDDING => (0..len).map(|_| normal(rng) / m.sqrt()).collect(),
                EMBED_NORM_W | NORM1_W | NORM2_W => vec![1.0; len],
                EMBED_NORM_B | NORM1_B | NORM2_B | OUT_PROJ_B => vec![0.0; len],
                IN_PROJ => (0..len).map(|_| uniform(rng, (6.0 / (m + 3.0 * m)).sqrt())).collect(),
                OUT_PROJ_W | LINEAR1_W | LINEAR1_B | CLS0_W | CLS0_B => (0..len).map(|_| uniform(rng, 1.0 / m.sqrt())).collect(),
                LINEAR2_W | LINEAR2_B => (0..len).map(|_| uniform(rng, 1.0 / f.sqrt())).collect(),
                _ => (0..len).map(|_| uniform(rng, 1.0 / h.sqrt())).collect(),
            };
            params.push(v.into_iter().map(T::of).collect());
        }
        let projection = match attention {
            Attention::Softmax => vec![],
            Attention::Kernel => orthogonal_projection(dims.features / 2, dims.d_head(), rng).into_iter().map(T::of).collect(),
        };
        let positions = sinusoids(dims.max_len, dims.d_model).into_iter().map(T::of).collect();
        Net { dims, attention, params, projection, positions }
    }

    /// The same network in another float type.
    pub fn cast<U: Real>(&self) -> Net<U> {
        let c = |v: &Vec<T>| v.iter().map(|x| U::of(x.to_f64())).collect::<Vec<U>>();
        Net {
            dims: self.dims,
            attention: self.attention,
            params: self.params.iter().map(c).collect(),
            projection: c(&self.projection),
            positions: c(&self.positions),
        }
    }

    /// All-zero tensors of the parameters' shapes.
    pub fn zero_grads(&self) -> Vec<Vec<T>> {
        self.params.iter().map(|p| vec![T::default(); p.len()]).collect()
    }

    pub(super) fn prepare(&self) -> Prepared<T> {
        let d = &self.dims;
        let p = &self.params;
        Prepared {
            in_proj: transpose(&p[IN_PROJ], 3 * d.d_model, d.d_model),
            out_proj: transpose(&p[OUT_PROJ_W], d.d_model, d.d_model),
            linear1: transpose(&p[LINEAR1_W], d.d_ff, d.d_model),
            linear2: transpose(&p[LINEAR2_W], d.d_model, d.d_ff),
            projection: transpose(&self.projection, self.projection.len() / d.d_head().max(1), d.d_head()),
        }
    }

    /// The exponents of φ for one query or key (d_h values of Q or K) into `phi` (m values):
    /// [h, −h] + offset; the caller shifts them and takes exp.
    /// The projection is a crossbar like the other matrices: with hardware-aware training's DAC
    /// it multiplies the quantised slice ([`dac_rows`]), and its outputs h gain the output noise
    /// (σ = output_noise · max|x̃|) and the ADC (in units of max|x̃|), while ‖x̃‖² is the digital norm of the slice itself, as the
    /// engine's `row_norms` reads it.
    pub(super) fn features(&self, prep: &Prepared<T>, x: &[T], phi: &mut [T], clip: &mut [bool], inj: &mut Injector) {
        let half = self.dims.features / 2;
        let s = T::of((self.dims.d_head() as f64).powf(-0.25));
        let mut sq = T::default();
        let (h, minus) = phi.split_at_mut(half);
        h.fill(T::default());
        let xq = dac_rows(Dac::of(inj), x, x.len());
        // h = W x̃ as a sum over the inputs in order (W transposed, so the loop runs over rows).
        for (c, (&v, &vq)) in x.iter().zip(xq.iter()).enumerate() {
            let xs = v * s;
            sq += xs * xs;
            let xqs = vq * s;
            for (hr, &w) in h.iter_mut().zip(&prep.projection[c * half..(c + 1) * half]) {
                *hr += xqs * w;
            }
        }
        if inj.cfg.output_noise > 0.0 || inj.has_adc() || inj.reads_weights() {
            let scaled: Vec<T> = x.iter().map(|&v| v * s).collect();
            let dh = x.len();
            let scales = inj.tile_scales(half, dh, |r, c| self.projection[r * dh + c].to_f64() as f32);
            periphery_rows(inj, &scaled, dh, &prep.projection, h, half, scales.as_deref(), clip);
            if inj.cfg.bm_last_reduction() > 1 {
                bound_rows(inj, &scaled, dh, &prep.projection, half, h, scales.as_deref(), clip);
            }
        }
        let off = T::of(-0.5) * sq - T::of((self.dims.features as f64).sqrt().ln());
        for (hr, mr) in h.iter_mut().zip(minus.iter_mut()) {
            *mr = -*hr + off;
            *hr += off;
        }
    }

    /// d φ → d x for one query or key (the exponent shift is a constant: see the module header);
    /// an output h the ADC clipped (`clip`) passes no gradient.
    pub(super) fn features_back(&self, x: &[T], phi: &[T], dphi: &[T], clip: &[bool], dx: &mut [T]) {
        let dh = self.dims.d_head();
        let half = self.dims.features / 2;
        let s = T::of((dh as f64).powf(-0.25));
        let mut doff = T::default();
        for f in 0..2 * half {
            doff += dphi[f] * phi[f];
        }
        for c in 0..dh {
            dx[c] = -(doff * x[c] * s) * s;
        }
        for r in 0..half {
            if clip.get(r) == Some(&true) {
                continue;
            }
            let dh_r = dphi[r] * phi[r] - dphi[half + r] * phi[half + r];
            for (dxc, &w) in dx.iter_mut().zip(&self.projection[r * dh..(r + 1) * dh]) {
                *dxc += dh_r * w * s;
            }
        }
    }

    /// Multi-head attention of `qkv` [n, 3d] into `lt.att`, filling the layer trace; `inj`:
    /// hardware-aware training's DAC and output noise on the feature projection.
    pub(super) fn attention_forward(&self, prep: &Prepared<T>, n: usize, lt: &mut LayerTrace<T>, inj: &mut Injector) {
        let d = self.dims.d_model;
        let dh = self.dims.d_head();
        let heads = self.dims.heads;
        let qkv = &lt.qkv;
        match self.attention {
            Attention::Softmax => {
                let sc = T::of(1.0 / (dh as f64).sqrt());
                lt.probs = vec![T::default(); heads * n * n];
                for h in 0..heads {
                    for i in 0..n {
                        let q = &qkv[i * 3 * d + h * dh..][..dh];
                        // A language model's token i attends to j ≤ i; the rest keep probability 0.
                        let keys = if self.dims.lm { i + 1 } else { n };
                        let row = &mut lt.probs[(h * n + i) * n..][..keys];
                        let mut mx = T::of(f64::NEG_INFINITY);
                        for j in 0..keys {
                            let k = &qkv[j * 3 * d + d + h * dh..][..dh];
                            let mut s = T::default();
                            for c in 0..dh {
                                s += q[c] * k[c];
                            }
                            row[j] = s * sc;
                            mx = max(mx, row[j]);
                        }
                        let mut sum = T::default();
                        for r in row.iter_mut() {
                            *r = (*r - mx).exp();
                            sum += *r;
                        }
                        for r in row.iter_mut() {
                            *r = *r / sum;
                        }
                        let out = &mut lt.att[i * d + h * dh..][..dh];
                        out.fill(T::default());
                        for j in 0..keys {
                            let p = row[j];
                            for (o, &v) in out.iter_mut().zip(&qkv[j * 3 * d + 2 * d + h * dh..][..dh]) {
                                *o += p * v;
                            }
                        }
                    }
                }
            }
            Attention::Kernel => {
                let m = self.dims.features;
                // A language model's query i reads the prefix sums over its keys j ≤ i: one
                // [m, d_h] and one [m] per position; otherwise one of each per head.
                let steps = if self.dims.lm { n } else { 1 };
                lt.phi_q = vec![T::default(); heads * n * m];
                lt.phi_k = vec![T::default(); heads * n * m];
                lt.clip_q = vec![false; heads * n * m / 2];
                lt.clip_k = vec![false; heads * n * m / 2];
                lt.kv = vec![T::default(); heads * steps * m * dh];
                lt.z = vec![T::default(); heads * steps * m];
                lt.den = vec![T::default(); heads * n];
                lt.shift = vec![T::default(); if self.dims.lm { heads * n } else { 0 }];
                for h in 0..heads {
                    // Keys: exponents, then one shift for the whole head; causal, the largest
                    // exponent of the keys so far (position j's sums are kept at scale e^−M_j).
                    let pk = &mut lt.phi_k[h * n * m..(h + 1) * n * m];
                    let mut mx = T::of(f64::NEG_INFINITY);
                    for j in 0..n {
                        let ck = &mut lt.clip_k[(h * n + j) * m / 2..][..m / 2];
                        self.features(prep, &qkv[j * 3 * d + d + h * dh..][..dh], &mut pk[j * m..(j + 1) * m], ck, inj);
                        for &a in &pk[j * m..(j + 1) * m] {
                            mx = max(mx, a);
                        }
                        if steps > 1 {
                            lt.shift[h * n + j] = mx;
                            for a in &mut pk[j * m..(j + 1) * m] {
                                *a = (*a - mx).exp();
                            }
                        }
                    }
                    if steps == 1 {
                        for a in pk.iter_mut() {
                            *a = (*a - mx).exp();
                        }
                    }
                    let kv = &mut lt.kv[h * steps * m * dh..(h + 1) * steps * m * dh];
                    let z = &mut lt.z[h * steps * m..(h + 1) * steps * m];
                    for j in 0..n {
                        let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
                        // Causal: position j's sums are j − 1's rescaled to its shift.
                        let at = if steps > 1 { j } else { 0 };
                        if steps > 1 && j > 0 {
                            let r = (lt.shift[h * n + j - 1] - lt.shift[h * n + j]).exp();
                            let (done, now) = kv.split_at_mut(j * m * dh);
                            for (o, &w) in now[..m * dh].iter_mut().zip(&done[(j - 1) * m * dh..]) {
                                *o = w * r;
                            }
                            let (done, now) = z.split_at_mut(j * m);
                            for (o, &w) in now[..m].iter_mut().zip(&done[(j - 1) * m..]) {
                                *o = w * r;
                            }
                        }
                        let (kv, z) = (&mut kv[at * m * dh..(at + 1) * m * dh], &mut z[at * m..(at + 1) * m]);
                        for f in 0..m {
                            let p = pk[j * m + f];
                            z[f] += p;
                            for (o, &vc) in kv[f * dh..(f + 1) * dh].iter_mut().zip(v) {
                                *o += p * vc;
                            }
                        }
                    }
                    // Queries: each shifted by its own largest exponent.
                    for i in 0..n {
                        let at = if steps > 1 { i } else { 0 };
                        let (kv, z) = (&kv[at * m * dh..(at + 1) * m * dh], &z[at * m..(at + 1) * m]);
                        let pq = &mut lt.phi_q[(h * n + i) * m..][..m];
                        let cq = &mut lt.clip_q[(h * n + i) * m / 2..][..m / 2];
                        self.features(prep, &qkv[i * 3 * d + h * dh..][..dh], pq, cq, inj);
                        let mx = pq.iter().fold(T::of(f64::NEG_INFINITY), |a, &b| max(a, b));
                        for a in pq.iter_mut() {
                            *a = (*a - mx).exp();
                        }
                        let out = &mut lt.att[i * d + h * dh..][..dh];
                        out.fill(T::default());
                        let mut den = T::default();
                        for f in 0..m {
                            let p = pq[f];
                            den += p * z[f];
                            for (o, &k) in out.iter_mut().zip(&kv[f * dh..(f + 1) * dh]) {
                                *o += p * k;
                            }
                        }
                        lt.den[h * n + i] = den;
                        for o in out.iter_mut() {
                            *o = *o / den;
                        }
                    }
                }
            }
        }
    }

    /// Backward of [`Self::attention_forward`]: d att → d qkv.
    pub(super) fn attention_back(&self, n: usize, lt: &LayerTrace<T>, datt: &[T], dqkv: &mut [T]) {
        let d = self.dims.d_model;
        let dh = self.dims.d_head();
        let qkv = &lt.qkv;
        for h in 0..self.dims.heads {
            match self.attention {
                Attention::Softmax => {
                    let sc = T::of(1.0 / (dh as f64).sqrt());
                    let mut ds = vec![T::default(); n];
                    for i in 0..n {
                        let row = &lt.probs[(h * n + i) * n..][..n];
                        let dout = &datt[i * d + h * dh..][..dh];
                        let mut dot = T::default();
                        for j in 0..n {
                            let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
                            let mut dp = T::default();
                            for c in 0..dh {
                                dp += dout[c] * v[c];
                            }
                            ds[j] = dp;
                            dot += row[j] * dp;
                            for (dv, &g) in dqkv[j * 3 * d + 2 * d + h * dh..][..dh].iter_mut().zip(dout) {
                                *dv += row[j] * g;
                            }
                        }
                        for j in 0..n {
                            let g = row[j] * (ds[j] - dot) * sc;
                            for c in 0..dh {
                                let (qc, kc) = (qkv[i * 3 * d + h * dh + c], qkv[j * 3 * d + d + h * dh + c]);
                                dqkv[i * 3 * d + h * dh + c] += g * kc;
                                dqkv[j * 3 * d + d + h * dh + c] += g * qc;
                            }
                        }
                    }
                }
                Attention::Kernel => {
                    let m = self.dims.features;
                    let steps = if self.dims.lm { n } else { 1 };
                    let kv = &lt.kv[h * steps * m * dh..(h + 1) * steps * m * dh];
                    let z = &lt.z[h * steps * m..(h + 1) * steps * m];
                    // d of the sums the queries read: over every query, or (causal) over the
                    // queries i ≥ j that key j's sums reach, accumulated from the last query back.
                    let mut dkv = vec![T::default(); m * dh];
                    let mut dz = vec![T::default(); m];
                    let mut dphi = vec![T::default(); m];
                    let mut dx = vec![T::default(); dh];
                    if steps == 1 {
                        for i in 0..n {
                            self.kernel_query_back(h, i, n, lt, datt, kv, z, &mut dkv, &mut dz, &mut dphi, &mut dx, dqkv);
                        }
                        for j in 0..n {
                            self.kernel_key_back(h, j, n, lt, &dkv, &dz, &mut dphi, &mut dx, dqkv);
                        }
                    } else {
                        // dkv, dz held at position i's scale: Σ_{i' ≥ i} e^(M_i − M_i') (d of i''s sums).
                        for i in (0..n).rev() {
                            if i + 1 < n {
                                let r = (lt.shift[h * n + i] - lt.shift[h * n + i + 1]).exp();
                                dkv.iter_mut().chain(dz.iter_mut()).for_each(|g| *g *= r);
                            }
                            let (kv, z) = (&kv[i * m * dh..(i + 1) * m * dh], &z[i * m..(i + 1) * m]);
                            self.kernel_query_back(h, i, n, lt, datt, kv, z, &mut dkv, &mut dz, &mut dphi, &mut dx, dqkv);
                            self.kernel_key_back(h, i, n, lt, &dkv, &dz, &mut dphi, &mut dx, dqkv);
                        }
                    }
                }
            }
        }
    }

    /// Kernel attention's backward for query `i` of head `h`, which read the sums `kv`, `z`:
    /// d φ(q_i) through the feature map into d q_i, and its share of d kv and d z added to `dkv`, `dz`.
    #[allow(clippy::too_many_arguments)]
    fn kernel_query_back(
        &self,
        h: usize,
        i: usize,
        n: usize,
        lt: &LayerTrace<T>,
        datt: &[T],
        kv: &[T],
        z: &[T],
        dkv: &mut [T],
        dz: &mut [T],
        dphi: &mut [T],
        dx: &mut [T],
        dqkv: &mut [T],
    ) {
        let (d, dh, m) = (self.dims.d_model, self.dims.d_head(), self.dims.features);
        let qkv = &lt.qkv;
        let den = lt.den[h * n + i];
        let dout = &datt[i * d + h * dh..][..dh];
        let out = &lt.att[i * d + h * dh..][..dh];
        let dnum: Vec<T> = dout.iter().map(|&g| g / den).collect();
        let mut dden = T::default();
        for c in 0..dh {
            dden -= dout[c] * out[c];
        }
        dden = dden / den;
        let pq = &lt.phi_q[(h * n + i) * m..][..m];
        for f in 0..m {
            let mut s = z[f] * dden;
            for (&k, &g) in kv[f * dh..(f + 1) * dh].iter().zip(&dnum) {
                s += k * g;
            }
            dphi[f] = s;
            dz[f] += pq[f] * dden;
            for (o, &g) in dkv[f * dh..(f + 1) * dh].iter_mut().zip(&dnum) {
                *o += pq[f] * g;
            }
        }
        self.features_back(&qkv[i * 3 * d + h * dh..][..dh], pq, dphi, &lt.clip_q[(h * n + i) * m / 2..][..m / 2], dx);
        for (o, &g) in dqkv[i * 3 * d + h * dh..][..dh].iter_mut().zip(dx.iter()) {
            *o += g;
        }
    }

    /// Kernel attention's backward for key `j` of head `h`, whose φ(k_j) and v_j entered sums with
    /// gradients `dkv`, `dz`: into d v_j and, through the feature map, d k_j.
    #[allow(clippy::too_many_arguments)]
    fn kernel_key_back(&self, h: usize, j: usize, n: usize, lt: &LayerTrace<T>, dkv: &[T], dz: &[T], dphi: &mut [T], dx: &mut [T], dqkv: &mut [T]) {
        let (d, dh, m) = (self.dims.d_model, self.dims.d_head(), self.dims.features);
        let qkv = &lt.qkv;
        let pk = &lt.phi_k[(h * n + j) * m..][..m];
        let v = &qkv[j * 3 * d + 2 * d + h * dh..][..dh];
        let dv = &mut dqkv[j * 3 * d + 2 * d + h * dh..][..dh];
        for f in 0..m {
            let mut s = dz[f];
            for (&g, &vc) in dkv[f * dh..(f + 1) * dh].iter().zip(v) {
                s += g * vc;
            }
            dphi[f] = s;
            for (o, &g) in dv.iter_mut().zip(&dkv[f * dh..(f + 1) * dh]) {
                *o += pk[f] * g;
            }
        }
        self.features_back(&qkv[j * 3 * d + d + h * dh..][..dh], pk, dphi, &lt.clip_k[(h * n + j) * m / 2..][..m / 2], dx);
        for (o, &g) in dqkv[j * 3 * d + d + h * dh..][..dh].iter_mut().zip(dx.iter()) {
            *o += g;
        }
    }

    pub(super) fn forward(&self, prep: &Prepared<T>, tokens: &[u32], inj: &mut Injector) -> Trace<T> {
        let dims = &self.dims;
        let (d, ff) = (dims.d_model, dims.d_ff);
        let n = tokens.len();
        assert!(n >= 1 && n <= dims.max_len, "sequence of {n} tokens; the model has {} positions", dims.max_len);
        let p = &self.params;
        let zeros = |len: usize| vec![T::default(); len];
        // Hardware-aware training's DAC on every crossbar input (0 bits: none).
        let dac = Dac::of(inj);
        let scale = T::of((d as f64).sqrt());
        let mut e = zeros(n * d);
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &p[EMBEDDING][tok as usize * d..][..d];
            for k in 0..d {
                e[t * d + k] = row[k] * scale + self.positions[t * d + k];
            }
        }
        let (mut xhat0, mut rstd0, mut x) = (zeros(n * d), zeros(n), zeros(n * d));
        layer_norm(&e, d, &p[EMBED_NORM_W], &p[EMBED_NORM_B], &mut x, &mut xhat0, &mut rstd0);
        let mut layers = Vec::with_capacity(dims.repeat);
        for _ in 0..dims.repeat {
            let mut lt = LayerTrace {
                qkv: zeros(n * 3 * d),
                probs: vec![],
                phi_q: vec![],
                phi_k: vec![],
                clip_q: vec![],
                clip_k: vec![],
                kv: vec![],
                z: vec![],
                den: vec![],
                shift: vec![],
                att: zeros(n * d),
                xhat1: zeros(n * d),
                rstd1: zeros(n),
                y1: zeros(n * d),
                ff_pre: zeros(n * ff),
                ff_act: zeros(n * ff),
                xhat2: zeros(n * d),
                rstd2: zeros(n),
                clips: Default::default(),
                x,
            };
            crossbar_linear(inj, &lt.x, d, &prep.in_proj, None, 3 * d, &mut lt.qkv, &mut lt.clips[0]);
            self.attention_forward(prep, n, &mut lt, inj);
            let mut r = zeros(n * d);
            crossbar_linear(inj, &lt.att, d, &prep.out_proj, Some(&p[OUT_PROJ_B]), d, &mut r, &mut lt.clips[1]);
            for (r, &xi) in r.iter_mut().zip(&lt.x) {
                *r += xi;
            }
            layer_norm(&r, d, &p[NORM1_W], &p[NORM1_B], &mut lt.y1, &mut lt.xhat1, &mut lt.rstd1);
            crossbar_linear(inj, &lt.y1, d, &prep.linear1, Some(&p[LINEAR1_B]), ff, &mut lt.ff_pre, &mut lt.clips[2]);
            for (a, &v) in lt.ff_act.iter_mut().zip(&lt.ff_pre) {
                *a = gelu(v);
            }
            crossbar_linear(inj, &lt.ff_act, ff, &prep.linear2, Some(&p[LINEAR2_B]), d, &mut r, &mut lt.clips[3]);
            for (r, &y) in r.iter_mut().zip(&lt.y1) {
                *r += y;
            }
            x = zeros(n * d);
            layer_norm(&r, d, &p[NORM2_W], &p[NORM2_B], &mut x, &mut lt.xhat2, &mut lt.rstd2);
            layers.push(lt);
        }
        // The head's input: the mean over the tokens, or a language model's every token.
        let (pool, rows) = if dims.token_head() {
            (x, n)
        } else {
            let mut pool = zeros(d);
            for xt in x.chunks_exact(d) {
                for (a, &v) in pool.iter_mut().zip(xt) {
                    *a += v;
                }
            }
            for a in pool.iter_mut() {
                *a = *a / T::of(n as f64);
            }
            (pool, 1)
        };
        let mut c_pre = zeros(rows * dims.hidden);
        let mut clips: [ClipRows; 2] = Default::default();
        crossbar_linear(inj, &pool, d, &transpose(&p[CLS0_W], dims.hidden, d), Some(&p[CLS0_B]), dims.hidden, &mut c_pre, &mut clips[0]);
        let c_act: Vec<T> = c_pre.iter().map(|&v| gelu(v)).collect();
        let mut logits = zeros(rows * dims.classes);
        crossbar_linear(
            inj,
            &c_act,
            dims.hidden,
            &transpose(&p[CLS2_W], dims.classes, dims.hidden),
            Some(&p[CLS2_B]),
            dims.classes,
            &mut logits,
            &mut clips[1],
        );
        Trace { n, xhat0, rstd0, layers, pool, c_pre, c_act, logits, clips, dac }
    }

    /// Adds `scale ×` the gradient of the trace's cross-entropy for `label` to `g`; returns the loss.
    /// A span head's `label` packs the answer as start · max_len + end (its loss: module header).
    /// A language model's loss is the mean over positions i < n − 1 of the cross-entropy of row
    /// i's logits against token i + 1 (`label` unused; 0 for a one-token sequence).
    pub(super) fn backward(&self, tokens: &[u32], tr: &Trace<T>, label: usize, scale: T, g: &mut [Vec<T>]) -> T {
        let dims = &self.dims;
        let (d, ff, n) = (dims.d_model, dims.d_ff, tr.n);
        let p = &self.params;
        let zeros = |len: usize| vec![T::default(); len];
        let c = dims.classes;
        // (row, target) pairs and each one's weight in the mean.
        let mut loss = T::default();
        let mut dlogits = zeros(tr.logits.len());
        if dims.span {
            // Start and end: each a softmax over the positions of its column of the logits.
            let half = T::of(0.5);
            let (start, end) = (label / dims.max_len, label % dims.max_len);
            for (col, target) in [(0, start), (1, end)] {
                let z: Vec<T> = (0..n).map(|r| tr.logits[r * c + col]).collect();
                let mx = z.iter().fold(T::of(f64::NEG_INFINITY), |a, &b| max(a, b));
                let mut sum = T::default();
                for &v in &z {
                    sum += (v - mx).exp();
                }
                loss += (mx + T::of(sum.to_f64().ln()) - z[target]) * half;
                for (r, &v) in z.iter().enumerate() {
                    dlogits[r * c + col] = ((v - mx).exp() / sum - if r == target { T::of(1.0) } else { T::default() }) * scale * half;
                }
            }
        }
        let targets: Vec<(usize, usize)> = if dims.span {
            vec![]
        } else if dims.lm {
            (0..n.saturating_sub(1)).map(|i| (i, tokens[i + 1] as usize)).collect()
        } else {
            vec![(0, label)]
        };
        let w = T::of(1.0 / targets.len().max(1) as f64);
        for &(r, target) in &targets {
            let z = &tr.logits[r * c..(r + 1) * c];
            let mx = z.iter().fold(T::of(f64::NEG_INFINITY), |a, &b| max(a, b));
            let mut sum = T::default();
            for &v in z {
                sum += (v - mx).exp();
            }
            loss += (mx + T::of(sum.to_f64().ln()) - z[target]) * w;
            for (o, (dl, &v)) in dlogits[r * c..(r + 1) * c].iter_mut().zip(z).enumerate() {
                *dl = ((v - mx).exp() / sum - if o == target { T::of(1.0) } else { T::default() }) * scale * w;
            }
        }
        let rows = tr.logits.len() / c;
        let mut dc_act = zeros(rows * dims.hidden);
        {
            let (gw, rest) = g[CLS2_W..].split_at_mut(1);
            crossbar_back(
                &dac_rows(tr.dac, &tr.c_act, dims.hidden),
                dims.hidden,
                &p[CLS2_W],
                &dlogits,
                dims.classes,
                &mut gw[0],
                Some(&mut rest[0]),
                Some(&mut dc_act),
                &tr.clips[1],
            );
        }
        let dc_pre: Vec<T> = dc_act.iter().zip(&tr.c_pre).map(|(&a, &v)| a * gelu_deriv(v)).collect();
        let mut dpool = zeros(rows * d);
        {
            let (gw, rest) = g[CLS0_W..].split_at_mut(1);
            crossbar_back(&dac_rows(tr.dac, &tr.pool, d), d, &p[CLS0_W], &dc_pre, dims.hidden, &mut gw[0], Some(&mut rest[0]), Some(&mut dpool), &tr.clips[0]);
        }
        let inv_n = T::of(1.0 / n as f64);
        let mut dx: Vec<T> = if dims.token_head() { dpool } else { (0..n * d).map(|i| dpool[i % d] * inv_n).collect() };
        for lt in tr.layers.iter().rev() {
            // x_out = LN2(r2), r2 = y1 + FFN(y1).
            let mut dr2 = zeros(n * d);
            {
                let (a, b) = g.split_at_mut(NORM2_B);
                layer_norm_back(&dx, d, &p[NORM2_W], &lt.xhat2, &lt.rstd2, &mut a[NORM2_W], &mut b[0], &mut dr2);
            }
            let mut dff_act = zeros(n * ff);
            {
                let (a, b) = g.split_at_mut(LINEAR2_B);
                crossbar_back(
                    &dac_rows(tr.dac, &lt.ff_act, ff),
                    ff,
                    &p[LINEAR2_W],
                    &dr2,
                    d,
                    &mut a[LINEAR2_W],
                    Some(&mut b[0]),
                    Some(&mut dff_act),
                    &lt.clips[3],
                );
            }
            for (a, &v) in dff_act.iter_mut().zip(&lt.ff_pre) {
                *a *= gelu_deriv(v);
            }
            let mut dy1 = dr2;
            {
                let (a, b) = g.split_at_mut(LINEAR1_B);
                crossbar_back(&dac_rows(tr.dac, &lt.y1, d), d, &p[LINEAR1_W], &dff_act, ff, &mut a[LINEAR1_W], Some(&mut b[0]), Some(&mut dy1), &lt.clips[2]);
            }
            // y1 = LN1(r1), r1 = x + out_proj(att).
            let mut dr1 = zeros(n * d);
            {
                let (a, b) = g.split_at_mut(NORM1_B);
                layer_norm_back(&dy1, d, &p[NORM1_W], &lt.xhat1, &lt.rstd1, &mut a[NORM1_W], &mut b[0], &mut dr1);
            }
            let mut datt = zeros(n * d);
            {
                let (a, b) = g.split_at_mut(OUT_PROJ_B);
                crossbar_back(&dac_rows(tr.dac, &lt.att, d), d, &p[OUT_PROJ_W], &dr1, d, &mut a[OUT_PROJ_W], Some(&mut b[0]), Some(&mut datt), &lt.clips[1]);
            }
            let mut dqkv = zeros(n * 3 * d);
            self.attention_back(n, lt, &datt, &mut dqkv);
            let mut dxin = dr1;
            crossbar_back(&dac_rows(tr.dac, &lt.x, d), d, &p[IN_PROJ], &dqkv, 3 * d, &mut g[IN_PROJ], None, Some(&mut dxin), &lt.clips[0]);
            dx = dxin;
        }
        let mut de = zeros(n * d);
        {
            let (a, b) = g.split_at_mut(EMBED_NORM_B);
            layer_norm_back(&dx, d, &p[EMBED_NORM_W], &tr.xhat0, &tr.rstd0, &mut a[EMBED_NORM_W], &mut b[0], &mut de);
        }
        let sc = T::of((d as f64).sqrt());
        for (t, &tok) in tokens.iter().enumerate() {
            for (gk, &v) in g[EMBEDDING][tok as usize * d..][..d].iter_mut().zip(&de[t * d..(t + 1) * d]) {
                *gk += v * sc;
            }
        }
        loss
    }

    /// A language model's next-token score over `data`: (Σ −ln p(next token) in nats, positions
    /// whose arg-max logit is the next token, predicted positions).
    pub fn next_token(&self, data: &SeqData) -> (f64, usize, usize) {
        let prep = self.prepare();
        let c = self.dims.classes;
        let (mut nll, mut hits, mut count) = (0.0, 0, 0);
        for i in 0..data.len() {
            let tokens = data.seq(i);
            let z: Vec<f64> = self.forward(&prep, tokens, &mut Injector::off()).logits.iter().map(|v| v.to_f64()).collect();
            for (r, &next) in tokens.iter().enumerate().skip(1) {
                let row = &z[(r - 1) * c..r * c];
                let mx = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                nll += mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() - row[next as usize];
                let zf: Vec<f32> = row.iter().map(|&v| v as f32).collect();
                hits += usize::from(crate::train::argmax(&zf) == next as usize);
                count += 1;
            }
        }
        (nll, hits, count)
    }

    /// A span head's answers over `data` (labels packed as start · width + end): exact matches
    /// and Σ token-level F1, each answer the context span (after the first separator, the
    /// separators excluded) of at most `max_answer` tokens with the largest start + end logit,
    /// the first on ties, its start and end among the `n_best` largest start and end logits (0:
    /// every span), as the engine's `answer_span` picks it.
    pub fn span_scores(&self, data: &SeqData, max_answer: usize, n_best: usize) -> (usize, f64) {
        use crate::workload::transformer::{best_span, score_answer, span_candidates};
        let prep = self.prepare();
        let (mut exact, mut f1) = (0, 0.0);
        for i in 0..data.len() {
            let tokens = data.seq(i);
            let z: Vec<f64> = self.forward(&prep, tokens, &mut Injector::off()).logits.iter().map(|v| v.to_f64()).collect();
            let context = crate::train::kvqa::context(tokens);
            let (starts, ends) = span_candidates(&context, z.len() / 2, n_best, |p| z[2 * p], |p| z[2 * p + 1]);
            let pred = best_span(&starts, &ends, max_answer, |s, e| z[2 * s] + z[2 * e + 1]).map(|(s, e, _)| (s, e));
            let score = score_answer(pred, &[(data.labels[i] / data.width as u32, data.labels[i] % data.width as u32)]);
            exact += score.exact as usize;
            f1 += score.f1;
        }
        (exact, f1)
    }

    /// Class logits of one sequence (its non-padding tokens); a language model's `[n][vocab]`.
    pub fn logits(&self, tokens: &[u32]) -> Vec<T> {
        self.forward(&self.prepare(), tokens, &mut Injector::off()).logits
    }

    /// Cross-entropy of `label` and its gradient (one tensor per parameter, as [`Self::params`]).
    pub fn loss_and_gradient(&self, tokens: &[u32], label: usize) -> (T, Vec<Vec<T>>) {
        self.loss_and_gradient_with(tokens, label, &mut Injector::off())
    }

    /// [`Self::loss_and_gradient`] with hardware-aware training's forward injections (the DAC on
    /// every crossbar input with its straight-through gradient, output noise); the weights are
    /// this network's as they are (perturb a copy for weight noise).
    pub fn loss_and_gradient_with(&self, tokens: &[u32], label: usize, inj: &mut Injector) -> (T, Vec<Vec<T>>) {
        let mut g = self.zero_grads();
        let tr = self.forward(&self.prepare(), tokens, inj);
        let loss = self.backward(tokens, &tr, label, T::of(1.0), &mut g);
        (loss, g)
    }

    /// Fraction of rows whose arg-max logit is the label; a language model's next-token accuracy;
    /// a span head's exact matches.
    pub fn accuracy(&self, data: &SeqData) -> f64 {
        if self.dims.span {
            use crate::workload::transformer::{MAX_ANSWER_TOKENS, N_BEST};
            return self.span_scores(data, MAX_ANSWER_TOKENS as usize, N_BEST as usize).0 as f64 / data.len().max(1) as f64;
        }
        if self.dims.lm {
            let (_, hits, count) = self.next_token(data);
            return hits as f64 / count.max(1) as f64;
        }
        let prep = self.prepare();
        let correct = (0..data.len())
            .filter(|&i| {
                let z: Vec<f32> = self.forward(&prep, data.seq(i), &mut Injector::off()).logits.iter().map(|v| v.to_f64() as f32).collect();
                crate::train::argmax(&z) == data.labels[i] as usize
            })
            .count();
        correct as f64 / data.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a DAC the feature projection multiplies the quantised slice, with output noise its
    /// outputs h gain N(0, (output_noise · max|x̃|)²), while the exponents' norm term,
    /// −‖x̃‖²/2 − ln √m, is the digital norm of the slice itself.
    #[test]
    fn the_feature_projection_multiplies_the_quantised_slice() {
        let dims = Dims { vocab: 16, max_len: 4, d_model: 8, heads: 2, d_ff: 4, hidden: 4, classes: 3, features: 6, repeat: 1, lm: false, span: false };
        let net: Net<f64> = Net::init(dims, Attention::Kernel, &mut Pcg64Mcg::seed_from_u64(2));
        let prep = net.prepare();
        let x = [0.9, -0.31, 0.05, -1.7];
        let q = dac_rows(Dac { bits: 3, max_in: 512 }, &x, 4).into_owned();
        let (mut with, mut on_q, mut plain) = ([0.0; 6], [0.0; 6], [0.0; 6]);
        let mut dac = Injector::new(&TrainingConfig { dac_bits: 3, ..TrainingConfig::default() }, 0);
        net.features(&prep, &x, &mut with, &mut [false; 3], &mut dac);
        net.features(&prep, &q, &mut on_q, &mut [false; 3], &mut Injector::off());
        net.features(&prep, &x, &mut plain, &mut [false; 3], &mut Injector::off());
        // φ's exponents are [h + off, −h + off].
        let h = |phi: &[f64; 6], r: usize| (phi[r] - phi[3 + r]) / 2.0;
        let off = |phi: &[f64; 6]| (phi[0] + phi[3]) / 2.0;
        for r in 0..3 {
            assert!((h(&with, r) - h(&on_q, r)).abs() < 1e-12, "feature {r}: W q(x̃)");
        }
        assert!((0..3).any(|r| (h(&with, r) - h(&plain, r)).abs() > 1e-3), "the DAC changes W x̃");
        assert!((off(&with) - off(&plain)).abs() < 1e-12 && (off(&with) - off(&on_q)).abs() > 1e-3, "the norm is the slice's own");
        // Output noise on h: σ = output_noise · max|x̃| per feature, the norm term untouched.
        let sigma = 0.5 * 1.7 * 4f64.powf(-0.25);
        let mut noisy = Injector::new(&TrainingConfig { output_noise: 0.5, ..TrainingConfig::default() }, 9);
        let (mut sum, mut sum_sq, draws) = (0.0, 0.0, 3000);
        for _ in 0..draws / 3 {
            let mut phi = [0.0; 6];
            net.features(&prep, &x, &mut phi, &mut [false; 3], &mut noisy);
            assert!((off(&phi) - off(&plain)).abs() < 1e-12);
            for r in 0..3 {
                let z = (h(&phi, r) - h(&plain, r)) / sigma;
                sum += z;
                sum_sq += z * z;
            }
        }
        let (mean, var) = (sum / draws as f64, sum_sq / draws as f64 - (sum / draws as f64).powi(2));
        // 3000 standard normals: the mean's sd is 0.018 and the variance's 0.026; 6 sd apart.
        assert!(mean.abs() < 0.11 && (var - 1.0).abs() < 0.16, "output noise on h: mean {mean}, variance {var} in units of σ");
        // The ADC: every h on the grid of 2·out_bound/(2^bits − 2) in units of max|x̃| (scaled),
        // clipped at ±out_bound of it; the norm term untouched.
        let cfg = TrainingConfig { adc_bits: 4, out_bound: 0.5, ..TrainingConfig::default() };
        let (step, alpha) = (crate::crossbar::step(4, 0.5) as f32 as f64, 1.7 * 4f64.powf(-0.25));
        let mut phi = [0.0; 6];
        net.features(&prep, &x, &mut phi, &mut [false; 3], &mut Injector::new(&cfg, 0));
        assert!((off(&phi) - off(&plain)).abs() < 1e-12);
        for r in 0..3 {
            let k = h(&phi, r) / alpha / step;
            assert!((k - k.round()).abs() < 1e-5 && k.abs() <= 0.5 / step + 1e-5, "feature {r}: {k} steps");
            let want = (h(&plain, r) / alpha / step).round().clamp(-0.5 / step, 0.5 / step);
            assert!((k - want).abs() < 1e-5, "feature {r}: {k} steps, the ADC of {want}");
        }
        assert!((0..3).any(|r| (h(&phi, r) - h(&plain, r)).abs() > 1e-3), "the ADC changes h");
        // Backward: a clipped h passes no gradient to x̃; the norm term's always does.
        let dphi = [0.3, -0.7, 0.2, 0.5, 0.1, -0.4];
        let dx = |clip: [bool; 3]| {
            let mut dx = [0.0; 4];
            net.features_back(&x, &plain, &dphi, &clip, &mut dx);
            dx
        };
        let s = 4f64.powf(-0.25);
        let doff: f64 = dphi.iter().zip(&plain).map(|(a, b)| a * b).sum();
        let norm_only: Vec<f64> = x.iter().map(|&xc| -(doff * xc * s) * s).collect();
        assert_eq!(dx([true; 3]).to_vec(), norm_only);
        let (none, one) = (dx([false; 3]), dx([false, true, false]));
        let w1: Vec<f64> = net.projection[4..8].to_vec();
        let dh1 = dphi[1] * plain[1] - dphi[4] * plain[4];
        for c in 0..4 {
            assert!((none[c] - one[c] - dh1 * w1[c] * s).abs() < 1e-12, "input {c}: the clipped feature's term is gone");
        }
    }
}
