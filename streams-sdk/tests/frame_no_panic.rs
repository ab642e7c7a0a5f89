//! The CCP's frame gatekeeper meets hostile messages: mutated and random
//! versions of valid frame messages must be answered or rejected with a
//! typed reason, never panic, and never touch the open session unless the
//! message really is a `hello` of the right version from the bound origin.

use streams_sdk::frame::{Accepted, FrameHost, ToCcp};

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

const CRM: &str = "https://crm.example";
const NONCE: &str = "0123456789abcdef0123456789abcdef";

fn valid_messages() -> Vec<String> {
    vec![
        format!(r#"{{"kind":"hello","version":1,"nonce":"{NONCE}"}}"#),
        format!(r#"{{"kind":"ping","nonce":"{NONCE}"}}"#),
        format!(
            r#"{{"kind":"request","nonce":"{NONCE}","id":7,"action":{{"action":"op","op":{{"op":"accept","contact_id":"c-1"}}}}}}"#
        ),
        format!(
            r#"{{"kind":"request","nonce":"{NONCE}","id":8,"action":{{"action":"set_device","device":"speaker","device_id":"abc"}}}}"#
        ),
        format!(
            r#"{{"kind":"request","nonce":"{NONCE}","id":9,"action":{{"action":"list_devices"}}}}"#
        ),
        format!(r#"{{"kind":"request","nonce":"{NONCE}","id":10,"action":{{"action":"logout"}}}}"#),
    ]
}

fn opened() -> FrameHost {
    let mut host = FrameHost::new(vec![CRM.into()]);
    let hello = &valid_messages()[0];
    assert!(matches!(
        host.receive(CRM, true, Some(hello)),
        Ok(Accepted::Opened(_))
    ));
    host
}

fn mutate(rng: &mut Rng, original: &str) -> String {
    let mut bytes = original.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
            1 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes.truncate(i);
            }
            2 if !bytes.is_empty() => {
                // Swap in a structural character where a value was.
                let i = rng.below(bytes.len());
                bytes[i] = b"{}[]\",:0-"[rng.below(9)];
            }
            _ => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, rng.next() as u8);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_messages_never_panic_or_move_the_session() {
    let mut rng = Rng(0x5eed_f4a3_0000_0001);
    let mut host = opened();
    let (mut accepted, mut rejected) = (0, 0);
    for round in 0..30_000 {
        let originals = valid_messages();
        let text = mutate(&mut rng, &originals[round % originals.len()]);
        // Sometimes from the wrong window or origin.
        let (origin, from_parent) = match rng.below(10) {
            0 => ("https://evil.example", true),
            1 => (CRM, false),
            _ => (CRM, true),
        };
        let is_right_hello = matches!(
            ToCcp::parse(&text),
            Ok(ToCcp::Hello { version: 1, ref nonce }) if nonce.len() >= 16 && nonce.len() <= 128
        ) && origin == CRM
            && from_parent;
        match host.receive(origin, from_parent, Some(&text)) {
            Ok(_) => accepted += 1,
            Err(_) => rejected += 1,
        }
        if is_right_hello {
            // A valid hello may re-open the session; start over from ours.
            host = opened();
        }
        assert_eq!(host.target_origin(), Some(CRM), "after {text:?}");
        assert_eq!(host.nonce(), Some(NONCE), "after {text:?}");
    }
    assert!(
        accepted > 0 && rejected > accepted,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn random_text_never_panics() {
    let mut rng = Rng(0x5eed_f4a3_0000_0002);
    let mut host = opened();
    for _ in 0..20_000 {
        let len = rng.below(96);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        assert!(host.receive(CRM, true, Some(&text)).is_err());
    }
    assert_eq!(host.nonce(), Some(NONCE));
}
