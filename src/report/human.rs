//! Owns how the numbers the console shows read: durations, money and
//! token counts.

/// 850ms, 1.2s, 3m07s.
pub(super) fn format_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        #[expect(clippy::cast_precision_loss, reason = "display only")]
        let s = ms as f64 / 1000.0;
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// Dollars to the cent; under a cent, to the tenth of a cent.
pub(super) fn money(usd: f64) -> String {
    if usd > 0.0 && usd < 0.01 {
        format!("${usd:.3}")
    } else {
        format!("${usd:.2}")
    }
}

/// 950, 12.3k, 4.1M.
pub(super) fn count(n: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let f = n as f64;
    if n < 1000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", f / 1e3)
    } else {
        format!("{:.1}M", f / 1e6)
    }
}
