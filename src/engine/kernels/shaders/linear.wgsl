// y = x · W + b, then per MODE: 0 nothing, 1 GELU (erf form, as BERT), 2 + residual.
// x: [m, k], W: [k, n] row-major, all as vec4 along the rows (k and n multiples of 4).
// Each invocation computes a 4-row x 4-column tile in registers: 16 vec4 multiply-adds per
// 8 vec4 loads, and no workgroup memory or barriers (which CPU WebGPU implementations such as
// SwiftShader emulate at great cost).

struct Params {
    m: u32,
    k4: u32,
    n4: u32,
    mode: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;

// erf: the odd rational polynomial of kernels/activation.rs (Eigen's and XLA's f32 erf), so
// that the CPU and WebGPU engines compute the same GELU.
fn erf4(v: vec4<f32>) -> vec4<f32> {
    let x = clamp(v, vec4<f32>(-4.0), vec4<f32>(4.0));
    let x2 = x * x;
    var p = x2 * -2.7261423e-10 + 2.7706814e-8;
    p = x2 * p + -2.101024e-6;
    p = x2 * p + -5.6925064e-5;
    p = x2 * p + -7.3499063e-4;
    p = x2 * p + -2.9546e-3;
    p = x2 * p + -1.6096033e-2;
    var q = x2 * -1.4566072e-5 + -2.1337406e-4;
    q = x2 * q + -1.682827e-3;
    q = x2 * q + -7.373329e-3;
    q = x2 * q + -1.426474e-2;
    return x * p / q;
}

fn finish(row: u32, c: u32, acc: vec4<f32>) {
    var v = acc + bias[c];
    let at = row * p.n4 + c;
    if (p.mode == 1u) {
        v = 0.5 * v * (1.0 + erf4(v * 0.70710678118654752));
    } else if (p.mode == 2u) {
        v = v + residual[at];
    }
    y[at] = v;
}

@compute @workgroup_size(16, 4)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let c = g.x;
    let r0 = g.y * 4u;
    if (c >= p.n4 || r0 >= p.m) {
        return;
    }
    // Rows past the end read the last row again (and are not written).
    let last = p.m - 1u;
    let x0 = r0 * p.k4;
    let x1 = min(r0 + 1u, last) * p.k4;
    let x2 = min(r0 + 2u, last) * p.k4;
    let x3 = min(r0 + 3u, last) * p.k4;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k4 = 0u; k4 < p.k4; k4 = k4 + 1u) {
        let base = 4u * k4 * p.n4 + c;
        let w0 = w[base];
        let w1 = w[base + p.n4];
        let w2 = w[base + 2u * p.n4];
        let w3 = w[base + 3u * p.n4];
        let a0 = x[x0 + k4];
        let a1 = x[x1 + k4];
        let a2 = x[x2 + k4];
        let a3 = x[x3 + k4];
        acc0 = acc0 + a0.x * w0 + a0.y * w1 + a0.z * w2 + a0.w * w3;
        acc1 = acc1 + a1.x * w0 + a1.y * w1 + a1.z * w2 + a1.w * w3;
        acc2 = acc2 + a2.x * w0 + a2.y * w1 + a2.z * w2 + a2.w * w3;
        acc3 = acc3 + a3.x * w0 + a3.y * w1 + a3.z * w2 + a3.w * w3;
    }
    finish(r0, c, acc0);
    if (r0 + 1u < p.m) { finish(r0 + 1u, c, acc1); }
    if (r0 + 2u < p.m) { finish(r0 + 2u, c, acc2); }
    if (r0 + 3u < p.m) { finish(r0 + 3u, c, acc3); }
}
