//! `brickyard-agent --config PATH`: serves the Brickyard agent over mutual TLS (placeholder
//! until the foundation lands).

fn main() {
    std::process::exit(0);
}
