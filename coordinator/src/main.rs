//! `brickyard`: the operator CLI (placeholder until the foundation lands).

fn main() {
    std::process::exit(0);
}
