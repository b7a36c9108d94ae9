//! The payment URI of an order's chosen currency, as wallets read it: EIP-681 on EVM
//! chains (`ethereum:<to>@<chain_id>?value=<wei>`, or the token's `transfer` call with the
//! recipient and the amount in base units), Solana Pay on Solana (`solana:<recipient>?amount=
//! <decimal>[&spl-token=<mint>]`). The page shows it, the QR code carries exactly it.
//!
//! A Solana Pay URI names no network, so a wallet on mainnet would pay a devnet order's
//! request with real funds: on a test network the URI carries a `label` and `message`
//! (which Solana Pay wallets show before the payer confirms) saying it is a test.

use crate::model::{ChainFamily, Payment};
use crate::registry::registry;

/// What a test network's Solana Pay URI adds: a label and a message, percent-encoded.
pub const SOLANA_TEST_NOTE: &str =
    "&label=Test%20payment&message=Test%20network%20only%3A%20do%20not%20send%20real%20funds";

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
            if chain.testnet {
                uri.push_str(SOLANA_TEST_NOTE);
            }
            uri
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn payment(currency: &str, raw: u128, to: &str) -> Payment {
        let c = registry().currency_by_id(currency).unwrap();
        let amount = Amount::new(RawAmount::from_u128(raw), c.decimals);
        let zero = Amount::new(RawAmount::ZERO, c.decimals);
        Payment {
            route: "direct".into(),
            payment_rail: "CRYPTO".into(),
            input: PaymentInput {
                currency: c.clone(),
                amount: amount.clone(),
                breakdown: Breakdown {
                    base: amount.clone(),
                    fees: Fees {
                        protocol_fee: zero.clone(),
                        custom_fee: None,
                        provider_fee: zero.clone(),
                        total_fee: zero.clone(),
                    },
                    gas: zero,
                    total: amount.clone(),
                },
            },
            output: PaymentOutput {
                currency: c,
                amount,
            },
            steps: vec![PaymentStep {
                kind: "deposit".into(),
                rail: "CRYPTO".into(),
                deposit_address: to.into(),
            }],
            recipient: to.into(),
            expires_at: Timestamp::now(),
            refund: None,
            derivation_index: None,
            exchange_id: None,
            received: None,
            remaining: None,
            source_tx_hash: None,
            created_at: None,
        }
    }

    const EVM_TO: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    const SOL_TO: &str = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";

    #[test]
    fn eip681_for_evm_native_and_tokens_with_chain_id_and_base_units() {
        let native = payment("84532:native", 12_500_000_000_000_000, EVM_TO);
        assert_eq!(
            payment_uri(&native).unwrap(),
            format!("ethereum:{EVM_TO}@84532?value=12500000000000000")
        );
        let usdc = payment(
            "84532:0x036cbd53842c5426634e7929541ec2318f3dcf7e",
            49_990_000,
            EVM_TO,
        );
        assert_eq!(
            payment_uri(&usdc).unwrap(),
            format!(
                "ethereum:0x036CbD53842c5426634e7929541eC2318f3dCF7e@84532/transfer?address={EVM_TO}&uint256=49990000"
            )
        );
        // A partial payment's URI asks for what is left.
        let mut partial = usdc;
        partial.remaining = Some(Amount::new(RawAmount::from_u128(29_990_000), 6));
        assert!(
            payment_uri(&partial)
                .unwrap()
                .ends_with("&uint256=29990000")
        );
    }

    #[test]
    fn solana_pay_for_sol_and_spl_tokens_with_decimal_amounts() {
        // Mainnet: the amount and, for a token, its mint; nothing else.
        let sol = payment("30000000000001:native", 1_500_000_000, SOL_TO);
        assert_eq!(
            payment_uri(&sol).unwrap(),
            format!("solana:{SOL_TO}?amount=1.5")
        );
        // Devnet names no network either: its URI says it is a test, for the wallet to show.
        let devnet = payment("30000000000101:native", 1_500_000_000, SOL_TO);
        assert_eq!(
            payment_uri(&devnet).unwrap(),
            format!("solana:{SOL_TO}?amount=1.5{SOLANA_TEST_NOTE}")
        );
        let usdc = payment(
            "30000000000101:4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
            25_000_000,
            SOL_TO,
        );
        assert_eq!(
            payment_uri(&usdc).unwrap(),
            format!(
                "solana:{SOL_TO}?amount=25&spl-token=4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU{SOLANA_TEST_NOTE}"
            )
        );
    }
}
