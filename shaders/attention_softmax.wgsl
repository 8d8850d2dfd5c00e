// Stage `attention_softmax`: exact scaled dot-product attention (Vaswani et al. 2017), digital:
// out_i = Σ_j softmax_j(q_i·k_j / √d_head) v_j over the keys j < len (the padding mask; padding
// trails) and, causal, j ≤ i. One pass with a running maximum (online softmax; Milakov &
// Gimelshein 2018), so no scores are stored and sequences of any length (512 tokens and more)
// run in one pass. q, k, v and out are [trial][sample][token][d_model], head h in columns
// h·d_head..; `lengths` is [sample] of this batch. CPU twin: src/engine/cpu/attention_softmax.rs.
//
// One workgroup = SQ consecutive query tokens of one (trial, sample, head), one invocation per
// query. With d_head ≤ 4·DV (64: BERT-base, the LRA models) the keys and values pass through
// workgroup memory BK tokens at a time and each invocation holds its query and accumulator in
// DV vec4 registers (constant indices once the loops unroll); wider heads (up to MAX_D_HEAD) read
// them from global memory with a private accumulator. Either way each query's score sums over
// the head's columns in increasing order and the online-softmax steps are the twin's.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> lengths: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// Queries per workgroup, keys per staged block, vec4 per head row in the register path.
const SQ: u32 = 64u;
const BK: u32 = 16u;
const DV: u32 = 16u;
// Largest d_head the private accumulator of the wide path holds.
const MAX_D_HEAD: u32 = 128u;

var<workgroup> ks: array<vec4<f32>, 256>;   // BK · DV
var<workgroup> vs: array<vec4<f32>, 256>;

@compute @workgroup_size(64)
fn attention_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let S = P.seq;
    let qblocks = (S.seq + SQ - 1u) / SQ;
    let w = wid.x + wid.y * nwg.x;
    if (w >= P.layer.trials * S.samples * S.heads * qblocks) {
        return;   // uniform over the workgroup
    }
    let qb = w % qblocks;
    let h = (w / qblocks) % S.heads;
    let ts = w / (qblocks * S.heads);        // trial_local · samples + sample
    let len = min(lengths[ts % S.samples], S.seq);
    let i = qb * SQ + lid;
    var keys = select(0u, len, i < S.seq);
    if (S.causal != 0u) {
        keys = min(keys, i + 1u);
    }
    let base = ts * S.seq * S.d_model + h * S.d_head;
    if (S.d_head <= 4u * DV) {
        // The workgroup's last key: the padding length, and causal, its last query's.
        var kmax = len;
        if (S.causal != 0u) {
            kmax = min(kmax, qb * SQ + SQ);
        }
        attend_staged(base, i, keys, kmax, lid);
    } else if (i < S.seq) {
        attend_wide(base, i, keys);
    }
}

// d_head ≤ 4·DV: keys and values staged BK tokens at a time; query and accumulator in registers.
fn attend_staged(base: u32, i: u32, keys: u32, kmax: u32, lid: u32) {
    let S = P.seq;
    let dh = S.d_head;
    let qo = base + min(i, S.seq - 1u) * S.d_model;
    var qv: array<vec4<f32>, DV>;
    for (var c4 = 0u; c4 < DV; c4 = c4 + 1u) {
        var e = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j = j + 1u) {
            let c = 4u * c4 + j;
            if (c < dh) {
                e[j] = q[qo + c];
            }
        }
        qv[c4] = e;
    }
    let inv = 1.0 / sqrt(f32(dh));
    var acc: array<vec4<f32>, DV>;
    var m = -3.0e38;
    var l = 0.0;
    for (var j0 = 0u; j0 < kmax; j0 = j0 + BK) {
        workgroupBarrier();
        // BK · DV vec4 of keys and of values, columns past d_head and tokens past kmax as zeros.
        for (var e = lid; e < BK * DV; e = e + SQ) {
            let jj = e / DV;
            let c0 = 4u * (e % DV);
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if (j0 + jj < kmax) {
                let ko = base + (j0 + jj) * S.d_model;
                for (var j = 0u; j < 4u; j = j + 1u) {
                    if (c0 + j < dh) {
                        kv[j] = k[ko + c0 + j];
                        vv[j] = v[ko + c0 + j];
                    }
                }
            }
            ks[e] = kv;
            vs[e] = vv;
        }
        workgroupBarrier();
        let jn = min(BK, keys - min(keys, j0));
        for (var jj = 0u; jj < jn; jj = jj + 1u) {
            // The score over the columns in increasing order (the zero columns past d_head add 0).
            var s = 0.0;
            for (var c4 = 0u; c4 < DV; c4 = c4 + 1u) {
                let kc = ks[jj * DV + c4];
                s = s + qv[c4].x * kc.x;
                s = s + qv[c4].y * kc.y;
                s = s + qv[c4].z * kc.z;
                s = s + qv[c4].w * kc.w;
            }
            s = s * inv;
            if (s > m) {
                let corr = exp(m - s);
                l = l * corr;
                for (var c4 = 0u; c4 < DV; c4 = c4 + 1u) {
                    acc[c4] = acc[c4] * corr;
                }
                m = s;
            }
            let p = exp(s - m);
            l = l + p;
            for (var c4 = 0u; c4 < DV; c4 = c4 + 1u) {
                acc[c4] = acc[c4] + p * vs[jj * DV + c4];
            }
        }
    }
    if (i >= S.seq) {
        return;
    }
    let r = select(0.0, 1.0 / l, l > 0.0);
    for (var c4 = 0u; c4 < DV; c4 = c4 + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            let c = 4u * c4 + j;
            if (c < dh) {
                out[qo + c] = acc[c4][j] * r;
            }
        }
    }
}

// Wider heads: one query's pass over its keys, read from global memory.
fn attend_wide(base: u32, i: u32, keys: u32) {
    let S = P.seq;
    let dh = min(S.d_head, MAX_D_HEAD);
    let qo = base + i * S.d_model;
    let inv = 1.0 / sqrt(f32(S.d_head));
    var acc: array<f32, MAX_D_HEAD>;
    var m = -3.0e38;
    var l = 0.0;
    for (var j = 0u; j < keys; j = j + 1u) {
        let ko = base + j * S.d_model;
        var s = 0.0;
        for (var c = 0u; c < dh; c = c + 1u) {
            s = s + q[qo + c] * k[ko + c];
        }
        s = s * inv;
        if (s > m) {
            let corr = exp(m - s);
            l = l * corr;
            for (var c = 0u; c < dh; c = c + 1u) {
                acc[c] = acc[c] * corr;
            }
            m = s;
        }
        let p = exp(s - m);
        l = l + p;
        for (var c = 0u; c < dh; c = c + 1u) {
            acc[c] = acc[c] + p * v[ko + c];
        }
    }
    let r = select(0.0, 1.0 / l, l > 0.0);
    for (var c = 0u; c < dh; c = c + 1u) {
        out[qo + c] = acc[c] * r;
    }
}
