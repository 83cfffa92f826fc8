// Where the sequence stands. It lives on the GPU so that consecutive tokens need no host
// round trip: argmax writes the next token, `advance` moves the position.
struct State {
    // Position of the token being processed.
    pos: u32,
    // Positions below this hold tokens the host supplied; argmax never overwrites them.
    known: u32,
    pad0: u32,
    pad1: u32,
}
