// Stage `head_out`: a pooled head's outputs per (trial, sequence) for metrics that read every
// sequence's prediction, not only a count of correct ones: GLUE's Matthews correlation (CoLA) and
// F1 (MRPC, QQP) from each sequence's predicted class, and its Pearson and Spearman correlations
// (STS-B) from each sequence's regression output (Wang et al., ICLR 2019; Spoon et al., Front.
// Comput. Neurosci. 2021 score BERT on PCM crossbars by them), and each row's right trials
// (`transformer.row_counts`). The head's outputs
// h[(trial · samples + sample) · n_out + o] are copied, bit for bit, to slot
// ([t_index][trial][batch] + sample_offset + sample) · n_out + o of `outputs`, where `batch` is
// the data set's sequence count, so the host reads every time point of a chunk back at once and
// forms the metric from the same f32 values on every backend. One invocation = one (trial,
// sequence, output).
// CPU twin: src/engine/cpu/head_out.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> h: array<f32>;
@group(0) @binding(2) var<storage, read_write> outputs: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn head_out(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let L = P.layer;
    let S = P.seq;
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= L.trials * S.samples * L.n_out) {
        return;
    }
    let o = i % L.n_out;
    let sample = (i / L.n_out) % S.samples;
    let trial = i / (L.n_out * S.samples);
    let slot = (L.t_index * L.trials + trial) * L.batch + S.sample_offset + sample;
    outputs[slot * L.n_out + o] = h[i];
}
