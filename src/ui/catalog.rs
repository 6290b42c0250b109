//! Named sample screens with realistic data, for `payterm render`, the golden snapshots and
//! the docs. The samples are fixed values so every rendering of a name is the same picture.

use super::UiError;
use super::model::*;

/// Every sample name, in the order a customer might meet them.
pub const SAMPLE_NAMES: &[&str] = &[
    "idle",
    "idle-offline",
    "amount",
    "show-code",
    "face-starting",
    "face-look",
    "face-recognising",
    "face-confirm",
    "face-paying",
    "processing",
    "confirming",
    "paid",
    "declined",
    "uncertain",
    "accepted-offline",
    "contract-refused",
    "reversed",
    "refunded",
    "qr",
    "refund-order",
    "refund-amount",
    "refund-confirm",
    "refund-processing",
    "refund-failed",
    "diagnostics",
];

/// The sizes golden snapshots are kept for: three panels, landscape and portrait.
pub const SNAPSHOT_SIZES: &[(u32, u32)] = &[
    (320, 240),
    (240, 320),
    (480, 320),
    (320, 480),
    (800, 480),
    (480, 800),
];

/// The status bar the samples use.
pub fn sample_status() -> StatusBar {
    StatusBar {
        merchant: "好邻居便利店".into(),
        time: "14:05".into(),
        online: true,
        unsettled: 0,
    }
}

/// The screen and status bar for a sample name. Unknown names list the known ones.
pub fn sample(name: &str) -> Result<(Screen, StatusBar), UiError> {
    let st = sample_status();
    let amount_fen = 2_850;
    let face = |step| Screen::Face { amount_fen, step };
    let screen = match name {
        "idle" => Screen::Idle,
        "idle-offline" => {
            return Ok((
                Screen::Idle,
                StatusBar {
                    online: false,
                    unsettled: 3,
                    ..st
                },
            ));
        }
        "amount" => Screen::AmountEntry {
            input: "28.5".into(),
        },
        "show-code" => Screen::ShowCode {
            amount_fen,
            seconds_left: 57,
        },
        "face-starting" => face(FaceStep::Starting),
        "face-look" => face(FaceStep::LookAtCamera),
        "face-recognising" => face(FaceStep::Recognising),
        "face-confirm" => face(FaceStep::ConfirmIdentity),
        "face-paying" => face(FaceStep::Paying),
        "processing" => Screen::Processing { amount_fen },
        "confirming" => Screen::CustomerConfirming {
            amount_fen,
            seconds_left: 42,
        },
        "paid" => Screen::Paid {
            amount_fen,
            wallet: Wallet::WeChat,
        },
        "declined" => Screen::Declined {
            amount_fen,
            reason: DeclineReason::InsufficientFunds,
        },
        "uncertain" => {
            return Ok((
                Screen::Uncertain { amount_fen },
                StatusBar { unsettled: 1, ..st },
            ));
        }
        // A kiosk's 云闪付 contract charge while the network is down: taken within the limits,
        // or refused above them.
        "accepted-offline" => {
            return Ok((
                Screen::AcceptedOffline { amount_fen },
                StatusBar {
                    online: false,
                    ..st
                },
            ));
        }
        "contract-refused" => {
            return Ok((
                Screen::Declined {
                    amount_fen,
                    reason: DeclineReason::ContractRefused(ContractRefusal::CustomerLimit),
                },
                StatusBar {
                    online: false,
                    ..st
                },
            ));
        }
        "reversed" => Screen::Reversed {
            amount_fen,
            refunded: true,
        },
        "refunded" => Screen::Refunded { refund_fen: 1_000 },
        "qr" => Screen::QrToScan {
            code_url: "weixin://wxpay/bizpayurl?pr=Xu9b3kQzz".into(),
            amount_fen,
            seconds_left: 118,
        },
        "refund-order" => Screen::RefundFlow(RefundStep::EnterOrder {
            input: "PT2024061514".into(),
        }),
        "refund-amount" => Screen::RefundFlow(RefundStep::EnterAmount {
            order: "PT20240615140501".into(),
            refundable_fen: amount_fen,
            input: "10".into(),
        }),
        "refund-confirm" => Screen::RefundFlow(RefundStep::Confirm {
            order: "PT20240615140501".into(),
            refund_fen: 1_000,
        }),
        "refund-processing" => Screen::RefundFlow(RefundStep::Processing {
            order: "PT20240615140501".into(),
            refund_fen: 1_000,
        }),
        "refund-failed" => Screen::RefundFlow(RefundStep::Failed {
            order: "PT20240615140501".into(),
            message: "退款金额超过可退金额 / refund exceeds the refundable amount".into(),
        }),
        "diagnostics" => Screen::Diagnostics {
            items: vec![
                DiagItem::new("version", "payterm 0.1.0", DiagStatus::Info),
                DiagItem::new("terminal", "T0000123 / M100000001", DiagStatus::Info),
                DiagItem::new("ip", "192.168.1.20 (eth0)", DiagStatus::Ok),
                DiagItem::new("aggregator", "reachable, 86 ms", DiagStatus::Ok),
                DiagItem::new("unionpay", "TLS handshake failed", DiagStatus::Fail),
                DiagItem::new("journal", "2 open, last write 14:04", DiagStatus::Warn),
                DiagItem::new("scanner", "/dev/input/by-id/usb-scanner", DiagStatus::Ok),
                DiagItem::new("face module", "/dev/ttyS3 FPL/1 ready", DiagStatus::Ok),
                DiagItem::new("display", "/dev/fb0 800x480 RGB565", DiagStatus::Ok),
            ],
        },
        other => {
            return Err(UiError::UnknownScreen(format!(
                "{} (known: {})",
                other.chars().take(40).collect::<String>(),
                SAMPLE_NAMES.join(", ")
            )));
        }
    };
    Ok((screen, st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_sample_and_unknown_names_list_them() {
        for n in SAMPLE_NAMES {
            assert!(sample(n).is_ok(), "{n}");
        }
        let e = sample("nope")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("idle") && e.contains("nope"), "{e}");
    }

    #[test]
    fn samples_cover_every_kind_of_screen() {
        let kinds: std::collections::HashSet<std::mem::Discriminant<Screen>> = SAMPLE_NAMES
            .iter()
            .filter_map(|n| sample(n).ok())
            .map(|(s, _)| std::mem::discriminant(&s))
            .collect();
        // Idle, AmountEntry, ShowCode, Face, Processing, CustomerConfirming, Paid, Declined,
        // Uncertain, AcceptedOffline, Reversed, Refunded, QrToScan, RefundFlow, Diagnostics.
        assert_eq!(kinds.len(), 15);
    }
}
