//! The payment URI of an order's chosen currency, as wallets read it: EIP-681 on EVM
//! chains (`ethereum:<to>@<chain_id>?value=<wei>`, or the token's `transfer` call with the
//! recipient and the amount in base units), Solana Pay on Solana (`solana:<recipient>?amount=
//! <decimal>[&spl-token=<mint>]`). The page shows it, the QR code carries exactly it.

use crate::model::{ChainFamily, Payment};
use crate::registry::registry;

/// The URI that pays `payment` in full (the amount still due when `remaining` is set).
pub fn payment_uri(payment: &Payment) -> Option<String> {
    let currency = &payment.input.currency;
    let chain = registry().chain(currency.chain_id).ok()?;
    let to = payment.deposit_address();
    let amount = payment.remaining.as_ref().unwrap_or(&payment.input.amount);
    Some(match chain.family {
        ChainFamily::Evm => match &currency.address {
            None => format!("ethereum:{to}@{}?value={}", chain.id, amount.raw),
            Some(token) => format!(
                "ethereum:{token}@{}/transfer?address={to}&uint256={}",
                chain.id, amount.raw
            ),
        },
        ChainFamily::Solana => {
            // Solana Pay amounts are plain decimals: `100`, `0.5`.
            let ui = amount.ui.strip_suffix(".0").unwrap_or(&amount.ui);
            let mut uri = format!("solana:{to}?amount={ui}");
            if let Some(mint) = &currency.address {
                uri.push_str(&format!("&spl-token={mint}"));
            }
            uri
        }
    })
}
