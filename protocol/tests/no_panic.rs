//! Decoders meet hostile bytes: random buffers and mutated golden frames
//! must produce values or typed errors, never a panic. The cargo-fuzz
//! targets in `protocol/fuzz` explore further; this seeded sweep runs in CI.

use protocol::media::decode_media_frame;
use protocol::wire::{decode_client_frame, decode_server_frame};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn all_decoders(bytes: &[u8]) {
    let _ = decode_media_frame(bytes);
    let text = String::from_utf8_lossy(bytes);
    let _ = decode_client_frame(&text);
    let _ = decode_server_frame(&text);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..20_000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        all_decoders(&bytes);
    }
}

#[test]
fn mutated_golden_frames_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut rng = Rng(0x5eed_0000_0000_0002);
    let mut files = 0;
    for entry in std::fs::read_dir(dir).expect("golden dir") {
        let original = std::fs::read(entry.expect("entry").path()).expect("read");
        files += 1;
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..=rng.below(4) {
                match rng.below(3) {
                    0 if !bytes.is_empty() => {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                    1 if !bytes.is_empty() => {
                        let i = rng.below(bytes.len());
                        bytes.truncate(i);
                    }
                    _ => {
                        let i = rng.below(bytes.len() + 1);
                        bytes.insert(i, b"{}[]\":,0-e"[rng.below(10)]);
                    }
                }
            }
            all_decoders(&bytes);
        }
    }
    assert!(files >= 40, "expected the golden fixtures, found {files}");
}
