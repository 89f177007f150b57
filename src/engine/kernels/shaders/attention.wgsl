// Self-attention of one token and one head over the tokens of its own sequence (a ragged
// batch: sequences lie one after another, spans[t] = (first row, length) of token t's
// sequence), with the softmax computed online in one pass over the keys (running maximum and
// sum, rescaling the accumulated context), so no score matrix is stored. The query is already
// scaled by 1/sqrt(head size) in the fused projection's weights.
// qkv: [tokens, 3 hidden] (query | key | value); context: [tokens, hidden]. HS4 (head size / 4)
// is substituted when the pipeline is made: private arrays need a constant size.

struct Params {
    tokens: u32,
    heads: u32,
    h4: u32,
    _pad: u32,
}

const HS4: u32 = {HS4}u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> spans: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> context: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let index = g.x;
    if (index >= p.tokens * p.heads) {
        return;
    }
    let t = index / p.heads;
    let head = index % p.heads;
    let span = spans[t];
    let stride = 3u * p.h4;
    let q_at = t * stride + head * HS4;
    let k_at = p.h4 + head * HS4;
    let v_at = 2u * p.h4 + head * HS4;
    var q: array<vec4<f32>, HS4>;
    var acc: array<vec4<f32>, HS4>;
    for (var d = 0u; d < HS4; d = d + 1u) {
        q[d] = qkv[q_at + d];
        acc[d] = vec4<f32>(0.0);
    }
    var running_max = -3.0e38;
    var running_sum = 0.0;
    for (var j = 0u; j < span.y; j = j + 1u) {
        let row = (span.x + j) * stride;
        var s = 0.0;
        for (var d = 0u; d < HS4; d = d + 1u) {
            s = s + dot(q[d], qkv[row + k_at + d]);
        }
        let new_max = max(running_max, s);
        let rescale = exp(running_max - new_max);
        let weight = exp(s - new_max);
        running_sum = running_sum * rescale + weight;
        for (var d = 0u; d < HS4; d = d + 1u) {
            acc[d] = acc[d] * rescale + weight * qkv[row + v_at + d];
        }
        running_max = new_max;
    }
    let inverse = 1.0 / running_sum;
    let out = t * p.h4 + head * HS4;
    for (var d = 0u; d < HS4; d = d + 1u) {
        context[out + d] = acc[d] * inverse;
    }
}
