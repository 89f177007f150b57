// y = layer_norm(x) row by row (biased variance, as BERT), one invocation per row.
// norm: gamma (h4 vec4s) then beta (h4 vec4s).

struct Params {
    rows: u32,
    h4: u32,
    epsilon: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> norm: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let r = g.x;
    if (r >= p.rows) {
        return;
    }
    let at = r * p.h4;
    var total = vec4<f32>(0.0);
    for (var i = 0u; i < p.h4; i = i + 1u) {
        total = total + x[at + i];
    }
    let width = f32(4u * p.h4);
    let mean = (total.x + total.y + total.z + total.w) / width;
    var squares = vec4<f32>(0.0);
    for (var i = 0u; i < p.h4; i = i + 1u) {
        let d = x[at + i] - mean;
        squares = squares + d * d;
    }
    let inverse = inverseSqrt((squares.x + squares.y + squares.z + squares.w) / width + p.epsilon);
    for (var i = 0u; i < p.h4; i = i + 1u) {
        y[at + i] = (x[at + i] - mean) * inverse * norm[i] + norm[p.h4 + i];
    }
}
