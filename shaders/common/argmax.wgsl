// The predicted class of a classifier's outputs h[base .. base + n): the first largest, so ties
// go to the lower class (`accuracy`, `row_correct`; `reference::argmax` on the host). The stage
// that includes this file declares `h`.
// CPU twin: src/engine/cpu/common.rs `first_argmax`.

fn first_argmax(base: u32, n: u32) -> u32 {
    var best = 0u;
    var best_v = h[base];
    for (var o = 1u; o < n; o = o + 1u) {
        if (h[base + o] > best_v) {
            best_v = h[base + o];
            best = o;
        }
    }
    return best;
}
