//! Call quality as a mean opinion score, from the ITU-T G.107 E-model in
//! the simplified form VoIP stacks use for a live indicator: delay
//! impairment from the one-way delay, equipment impairment from packet
//! loss (with Opus's robustness to random loss), no other impairments.

/// Estimated MOS (1.0-4.5) for a one-way delay and a packet loss percentage.
pub fn mos(one_way_delay_ms: f64, loss_percent: f64) -> f64 {
    let d = one_way_delay_ms.max(0.0);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    // Opus: no impairment at zero loss; packet-loss robustness factor 20
    // (random loss, with concealment and FEC).
    let (ie, bpl) = (0.0, 20.0);
    let ppl = loss_percent.clamp(0.0, 100.0);
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl);
    let r = (93.2 - id - ie_eff).clamp(0.0, 100.0);
    (1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::mos;

    #[test]
    fn mos_falls_with_delay_and_loss() {
        let clean = mos(40.0, 0.0);
        assert!(clean > 4.3 && clean <= 4.5, "{clean}");
        assert!(mos(300.0, 0.0) < mos(100.0, 0.0));
        assert!(mos(40.0, 5.0) < clean);
        assert!(mos(40.0, 30.0) < 3.0);
        assert!(mos(1_000.0, 100.0) >= 1.0);
    }
}
