// RMSNorm folded into the next mat-vec: the 64 threads of a workgroup reduce Σ x² together
// and each row's dot product is scaled by the result. Needs `x: array<f32>`.

var<workgroup> norm_part: array<f32, 64>;

// 1 / sqrt(mean(x[0..n]²) + eps). Every thread of the workgroup must call it.
fn inv_rms(tid: u32, n: u32, eps: f32) -> f32 {
    var s = 0.0;
    for (var i = tid; i < n; i += 64u) {
        s += x[i] * x[i];
    }
    norm_part[tid] = s;
    workgroupBarrier();
    for (var h = 32u; h > 0u; h >>= 1u) {
        if (tid < h) {
            norm_part[tid] += norm_part[tid + h];
        }
        workgroupBarrier();
    }
    return 1.0 / sqrt(norm_part[0] / f32(n) + eps);
}
