// Embeddings of a ragged batch before their layer norm (layer_norm.wgsl runs next), one
// invocation per token: word row + (position row + token type 0 row, summed once on upload).
// tokens[t] = (token id, position in its sequence).

struct Params {
    rows: u32,
    h4: u32,
    epsilon: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> words: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> places: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let r = g.x;
    if (r >= p.rows) {
        return;
    }
    let word = tokens[r].x * p.h4;
    let place = tokens[r].y * p.h4;
    let at = r * p.h4;
    for (var i = 0u; i < p.h4; i = i + 1u) {
        y[at + i] = words[word + i] + places[place + i];
    }
}
