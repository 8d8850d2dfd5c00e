// Stage `drift`: a trial's effective weights at inference time t (noise-models §1, §3): read the
// programmed state `program` stored (programmed weight and drift exponent), re-convert with the
// tile's s2 = g_max / max|W_prog|, drift, add accumulated 1/f read noise (a fresh draw per t);
// with several pairs per weight, re-convert onto the pairs (s2 = Σ F_k g_max / max|W_prog|) and
// drift and read each pair's device with its own exponent and draw (drifted_pairs).
// With drift_path = 1 both devices of the pair drift separately instead (each its own nu and
// read noise, no re-conversion); with 2 (a relaxation table, ReRAM) each device of the pair is a
// fresh draw about its target at the table's time L.relax_at, re-converted as path 0; with 3 (one
// device per weight, CMO ReRAM) the programmed weight re-converted onto [g_min, g_max] with its
// trial's tile range, relaxed in ln t and read (log_relaxed_weight). Also the per-chunk sums of
// the GDC readouts (one-hot inputs through the full forward path: IR drop, per-read weight
// noise, output noise, ADC; `gdc_readout` in common/device.wgsl): at t, and right after
// programming (baseline; computed at the first time point only and kept in its partials slot
// for the later ones). One invocation = one
// weight of one trial; workgroup (x = 256-element chunk of a tile, y = tile, z = trial in chunk);
// with per-column GDC each chunk holds part of one row (`chunk_elem`), so partials are per row.
// The tree reduction has a fixed shape, so partial sums do not depend on chunking.
// CPU twin: src/engine/cpu/drift.rs.

@group(0) @binding(0) var<uniform> P: StageParams;
@group(0) @binding(1) var<storage, read> tiles: array<TileInfo>;
@group(0) @binding(2) var<storage, read> progmax: array<u32>;
@group(0) @binding(3) var<storage, read> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> weff: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

const CHUNK: u32 = 256u;
var<workgroup> sum_read: array<f32, 256>;
var<workgroup> sum_base: array<f32, 256>;

// The read-noise normals of a weight's pairs at one time: pairs 0 and 1 from words 0 and 1 of
// the weight's read block nr (the one-pair block), pairs 2 and 3 from words 0 and 1 of the block
// at counter word 3 = 1 (drawn only with more than two pairs). ctr: the read block's first three
// counter words. CPU twin: cpu/common.rs pair_read_normals.
fn pair_read_normals(dev: DeviceParams, nr: vec4<f32>, ctr: vec3<u32>, key: vec2<u32>) -> vec4<f32> {
    if (dev.pairs > 2u) {
        let n2 = normal4(philox4x32_10(vec4<u32>(ctr, 1u), key));
        return vec4<f32>(nr.x, nr.y, n2.x, n2.y);
    }
    return vec4<f32>(nr.x, nr.y, 0.0, 0.0);
}

@compute @workgroup_size(256)
fn drift(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let L = P.layer;
    let ntiles = L.tiles_in * L.tiles_out;
    let t = tiles[wg.y];
    let dev = tile_device(P.dev, t);
    let trial_local = wg.z;
    let trial = L.trial_offset + trial_local;
    let key = vec2<u32>(L.key0, L.key1);
    let rc = chunk_elem(L, t, wg.x, lid);
    var rd = 0.0;
    var bs = 0.0;
    if (rc.x < t.rows) {
        let elem = (t.row_start + rc.x) * L.n_in + t.col_start + rc.y;
        let s = dev.g_max / max(t.wmax_norm, 1e-7);
        let nw = L.n_in * L.n_out;
        let pm = (trial_local * ntiles + wg.y) * 2u;
        let s2 = pair_gmax(dev) / max(bitcast<f32>(progmax[pm]), 1e-7);
        // One block per weight and time: read noise of the pair (words 0, 1) and the GDC readout's
        // output and per-read weight noise, one draw (word 2).
        let ctr = vec3<u32>(elem, trial, ctr_word2(L.layer, STREAM_READ, L.t_index));
        let nr = normal4(philox4x32_10(vec4<u32>(ctr, 0u), key));
        var we = 0.0;
        var wp = 0.0;
        if (dev.pairs > 1u) {
            // Several pairs: the programmed weight and each pair's exponent, each pair read with
            // its own draw (pair_read_normals).
            let words = 1u + pair_count(dev);
            let b = trial_local * words * nw + elem;
            wp = state[b];
            var nu = vec4<f32>(0.0);
            for (var k = 0u; k < pair_count(dev); k = k + 1u) {
                nu[k] = state[b + (1u + k) * nw];
            }
            we = drifted_pairs(dev, wp, nu, s2, L.log_t_ratio, L.read_sqrt_log, pair_read_normals(dev, nr, ctr, key));
        } else if (dev.drift_path == 1u) {
            let b = trial_local * 4u * nw + elem;
            let gpair = vec2<f32>(state[b], state[b + nw]);
            wp = (gpair.x - gpair.y) / s;
            we = drift_pair(dev, gpair, state[b + 2u * nw], state[b + 3u * nw], s, L.log_t_ratio, L.read_sqrt_log, nr.xy);
        } else if (dev.drift_path == 2u) {
            let b = trial_local * 2u * nw + elem;
            wp = state[b];
            we = relaxed_weight(dev, state[b + nw], s, s2, L.relax_at, nr.xy);
        } else if (dev.drift_path == 3u) {
            let b = trial_local * 2u * nw + elem;
            wp = state[b];
            let hi2 = order_value(progmax[pm]);
            let lo2 = -order_value(progmax[pm + 1u]);
            we = log_relaxed_weight(dev, wp, lo2, hi2, L.relax_at, L.log_t_ratio, L.read_sqrt_log, nr.xy);
        } else {
            let b = trial_local * 2u * nw + elem;
            wp = state[b];
            let nu = state[b + nw];
            we = drift_weight(dev, wp, nu, nu, s2, L.log_t_ratio, L.read_sqrt_log, nr.x);
        }
        weff[trial_local * L.n_out * L.n_in + elem] = we;
        if (L.gdc_mode != 0u) {
            rd = abs(gdc_readout(P.io, we, rc.y, t.cols, nr.z));
            if (L.gdc_mode == 1u && L.gdc_base != 0u) {
                // The baseline belongs to the programming (aihwkit reads it once, at programming).
                let nb = normal2(philox4x32_10(vec4<u32>(elem, programming_of(L, trial), ctr_word2(L.layer, STREAM_GDC_BASE, 0u), 0u), key));
                bs = abs(gdc_readout(P.io, wp, rc.y, t.cols, nb.x));
            }
        }
    }
    sum_read[lid] = rd;
    sum_base[lid] = bs;
    workgroupBarrier();
    for (var half = CHUNK / 2u; half > 0u; half = half / 2u) {
        if (lid < half) {
            sum_read[lid] = sum_read[lid] + sum_read[lid + half];
            sum_base[lid] = sum_base[lid] + sum_base[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let o = ((trial_local * ntiles + wg.y) * L.chunks_per_tile + wg.x) * 2u;
        partials[o] = sum_read[0];
        if (L.gdc_base != 0u) {
            partials[o + 1u] = sum_base[0];
        }
    }
}
