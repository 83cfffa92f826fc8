// Moves the sequence one position on, after a token's last dispatch.

@group(0) @binding(0) var<storage, read_write> state: State;

@compute @workgroup_size(1)
fn main() {
    state.pos += 1u;
}
