//! Who is calling, for the contact card: the customer's name when the
//! contact's attributes carry one (it headlines, the number goes below),
//! and the other attributes as labelled rows with display names in Amazon
//! Connect's style ("orderId" reads "Order ID", "shipping_date" "Shipping
//! date"), not a dump of keys. Pure functions over the contact's data; the
//! card renders them and translates the labels it knows.

use std::collections::BTreeMap;

/// Attribute keys that hold the customer's name: the contact center's
/// customer records write `customerName`, the sample order flow's lookup
/// `customer_name`.
const NAME_KEYS: [&str; 2] = ["customerName", "customer_name"];

/// The customer's name, when an attribute carries a non-blank one.
pub fn name(attributes: &BTreeMap<String, String>) -> Option<String> {
    NAME_KEYS
        .iter()
        .filter_map(|k| attributes.get(*k))
        .find(|v| !v.trim().is_empty())
        .cloned()
}

/// A display name for an attribute key: words split at `_`, `-`, `.`,
/// spaces and lower-to-upper case changes; the first word capitalised, the
/// others lower case, `id` written `ID`, and words in capitals (`VIP`)
/// kept. ASCII case mapping only: keys are identifiers, and Unicode's case
/// tables would cost the bundle kilobytes.
pub fn label(key: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    let (mut start, mut prev_lower) = (0, false);
    for (i, c) in key.char_indices() {
        let split = matches!(c, '_' | '-' | '.' | ' ');
        if split || (c.is_ascii_uppercase() && prev_lower) {
            words.push(&key[start..i]);
            start = if split { i + 1 } else { i };
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    words.push(&key[start..]);
    let mut out = String::new();
    for w in words.into_iter().filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        if w.eq_ignore_ascii_case("id") {
            out.push_str("ID");
        } else if w.len() > 1 && w.bytes().all(|b| b.is_ascii_uppercase()) {
            out.push_str(w);
        } else {
            let lower = w.to_ascii_lowercase();
            let mut chars = lower.chars();
            if let (true, Some(first)) = (out.is_empty(), chars.next()) {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            } else {
                out.push_str(&lower);
            }
        }
    }
    if out.is_empty() {
        key.to_owned()
    } else {
        out
    }
}

/// The attributes to show as rows, in key order: `(display name, value)`,
/// without the name (it headlines the card) and without blank values.
/// `true`/`false` read as English words (`Yes`/`No`) the card translates.
pub fn rows(attributes: &BTreeMap<String, String>) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter(|(k, v)| !NAME_KEYS.contains(&k.as_str()) && !v.trim().is_empty())
        .map(|(k, v)| {
            let value = match v.as_str() {
                "true" => "Yes".to_owned(),
                "false" => "No".to_owned(),
                _ => v.clone(),
            };
            (label(k), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_read_as_display_names() {
        for (key, shown) in [
            ("orderId", "Order ID"),
            ("shippingDate", "Shipping date"),
            ("shipping_date", "Shipping date"),
            ("order_id", "Order ID"),
            ("item", "Item"),
            ("cancelled", "Cancelled"),
            ("VIP", "VIP"),
            ("vipLevel", "Vip level"),
            ("account-number", "Account number"),
            ("id", "ID"),
            ("__", "__"),
            ("注文", "注文"),
        ] {
            assert_eq!(label(key), shown, "{key}");
        }
    }

    #[test]
    fn the_name_headlines_and_is_not_repeated_in_the_rows() {
        let a = attrs(&[
            ("customerName", "Justin"),
            ("orderId", "100"),
            ("cancelled", "false"),
            ("note", " "),
        ]);
        assert_eq!(name(&a).as_deref(), Some("Justin"));
        assert_eq!(
            rows(&a),
            vec![
                ("Cancelled".to_owned(), "No".to_owned()),
                ("Order ID".to_owned(), "100".to_owned())
            ]
        );
        let flow = attrs(&[("customer_name", "Justin")]);
        assert_eq!(name(&flow).as_deref(), Some("Justin"));
        assert!(rows(&flow).is_empty());
        assert_eq!(name(&attrs(&[("customerName", "  ")])), None);
        assert_eq!(name(&attrs(&[])), None);
    }
}
