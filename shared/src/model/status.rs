//! Order statuses, order modes, key modes and the one transition table (DESIGN §3).
//!
//! Every status write goes through [`check_transition`]; the store only accepts updates built
//! by [`crate::PayOrder::transition`], which calls it.

wire_enum!(
    /// Where an order is in its life cycle (seed 002, plus CANCELLED from seed 003).
    OrderStatus {
        Pending = "PENDING",
        AwaitingPayment = "AWAITING_PAYMENT",
        OptimisticConfirmed = "OPTIMISTIC_CONFIRMED",
        AwaitingConfirmation = "AWAITING_CONFIRMATION",
        ExecutingOrder = "EXECUTING_ORDER",
        Completed = "COMPLETED",
        PartialPayment = "PARTIAL_PAYMENT",
        Expired = "EXPIRED",
        Failed = "FAILED",
        Refunded = "REFUNDED",
        Cancelled = "CANCELLED",
    }
);

wire_enum!(
    /// What an order is for. Only SALE and DEPOSIT are built; the others are accepted names
    /// that the API answers with a typed not-supported error.
    OrderMode {
        Sale = "SALE",
        Deposit = "DEPOSIT",
        Refund = "REFUND",
        Swap = "SWAP",
        FeeClaim = "FEE_CLAIM",
    }
);

wire_enum!(
    /// Live or test: which data a key sees. Test keys never see live objects and vice versa.
    KeyMode {
        Live = "live",
        Test = "test",
    }
);

wire_enum!(
    /// Event types (DESIGN §8).
    EventType {
        OrderCreated = "order.created",
        OrderAwaitingPayment = "order.awaiting_payment",
        OrderPaymentDetected = "order.payment_detected",
        OrderPartialPayment = "order.partial_payment",
        OrderConfirmed = "order.confirmed",
        OrderExecuting = "order.executing",
        OrderCompleted = "order.completed",
        OrderExpired = "order.expired",
        OrderCancelled = "order.cancelled",
        OrderFailed = "order.failed",
        OrderRefunded = "order.refunded",
        OrderPaymentLate = "order.payment_late",
        OrderOverpaid = "order.overpaid",
        RefundCreated = "refund.created",
        RefundSucceeded = "refund.succeeded",
        RefundCancelled = "refund.cancelled",
        WebhookEndpointDisabled = "webhook_endpoint.disabled",
        Ping = "ping",
    }
);

impl OrderMode {
    pub fn is_supported(&self) -> bool {
        matches!(self, OrderMode::Sale | OrderMode::Deposit)
    }
}

impl KeyMode {
    /// The mode of an object by its `livemode` flag.
    pub fn of(livemode: bool) -> Self {
        if livemode {
            KeyMode::Live
        } else {
            KeyMode::Test
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, KeyMode::Live)
    }
}

impl OrderStatus {
    /// Statuses from which nothing but a recorded refund can follow.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            OrderStatus::Completed
                | OrderStatus::Expired
                | OrderStatus::Failed
                | OrderStatus::Refunded
                | OrderStatus::Cancelled
        )
    }

    /// Statuses in which a transfer to the order is verified and recorded: waiting for a
    /// payment, or EXPIRED or CANCELLED (a late payment, inside the monitoring window: a
    /// customer may pay from a checkout page opened before the merchant cancelled, and
    /// that money must show on the order, to be refunded). The one place that decides
    /// which orders take money.
    pub fn accepts_payment(&self) -> bool {
        matches!(
            self,
            OrderStatus::AwaitingPayment
                | OrderStatus::PartialPayment
                | OrderStatus::Expired
                | OrderStatus::Cancelled
        )
    }

    /// Statuses that record transfers only as late payments (they stay as they are).
    pub fn takes_late_payments_only(&self) -> bool {
        matches!(self, OrderStatus::Expired | OrderStatus::Cancelled)
    }

    /// Statuses with a confirmation check outstanding (the sweeper re-queues stalled ones).
    pub fn awaits_confirmation(&self) -> bool {
        matches!(
            self,
            OrderStatus::AwaitingConfirmation
                | OrderStatus::OptimisticConfirmed
                | OrderStatus::ExecutingOrder
        )
    }

    /// Statuses that `expire-orders` looks at once `expires_at` has passed.
    pub fn is_expirable(&self) -> bool {
        matches!(
            self,
            OrderStatus::Pending | OrderStatus::AwaitingPayment | OrderStatus::PartialPayment
        )
    }

    /// The event a move into this status emits.
    pub fn event_type(&self) -> Option<EventType> {
        use OrderStatus::*;
        Some(match self {
            Pending => return None,
            AwaitingPayment => EventType::OrderAwaitingPayment,
            AwaitingConfirmation => EventType::OrderPaymentDetected,
            PartialPayment => EventType::OrderPartialPayment,
            OptimisticConfirmed => EventType::OrderConfirmed,
            ExecutingOrder => EventType::OrderExecuting,
            Completed => EventType::OrderCompleted,
            Expired => EventType::OrderExpired,
            Cancelled => EventType::OrderCancelled,
            Failed => EventType::OrderFailed,
            Refunded => EventType::OrderRefunded,
        })
    }
}

/// Facts beside the status that some transitions depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransitionFacts {
    /// A payment arrived after the order expired.
    pub paid_late: bool,
    /// The counted transfers cover the amount and every one was mined by `expires_at`:
    /// the customer paid in time, though the order expired before the payment was seen.
    pub paid_in_time: bool,
}

/// An extra condition a row of the table needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    None,
    PaidLate,
    PaidInTime,
}

/// The transition table: (from, to, guard). Nothing else decides whether a status may change.
const TRANSITIONS: &[(OrderStatus, OrderStatus, Guard)] = {
    use Guard::None as Always;
    use OrderStatus::*;
    &[
        (Pending, AwaitingPayment, Always),
        (Pending, Cancelled, Always),
        (AwaitingPayment, Cancelled, Always),
        (Pending, Expired, Always),
        (AwaitingPayment, Expired, Always),
        (PartialPayment, Expired, Always),
        (AwaitingPayment, AwaitingConfirmation, Always),
        (PartialPayment, AwaitingConfirmation, Always),
        (AwaitingPayment, PartialPayment, Always),
        (AwaitingConfirmation, OptimisticConfirmed, Always),
        (AwaitingConfirmation, ExecutingOrder, Always),
        (OptimisticConfirmed, ExecutingOrder, Always),
        (AwaitingConfirmation, Completed, Always),
        (OptimisticConfirmed, Completed, Always),
        (ExecutingOrder, Completed, Always),
        (AwaitingConfirmation, AwaitingPayment, Always),
        (OptimisticConfirmed, AwaitingPayment, Always),
        (ExecutingOrder, Refunded, Always),
        (ExecutingOrder, Failed, Always),
        (Completed, Refunded, Always),
        (Expired, Refunded, Guard::PaidLate),
        (Expired, AwaitingConfirmation, Guard::PaidInTime),
    ]
};

/// Why a status change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("an order cannot move from {from} to {to}")]
    NotAllowed { from: OrderStatus, to: OrderStatus },
    #[error("an order can move from {from} to {to} only when it was paid late")]
    NeedsPaidLate { from: OrderStatus, to: OrderStatus },
    #[error("an order can move from {from} to {to} only when it was paid in time")]
    NeedsPaidInTime { from: OrderStatus, to: OrderStatus },
}

/// Decides whether `from → to` is allowed given the order's facts.
pub fn check_transition(
    from: OrderStatus,
    to: OrderStatus,
    facts: TransitionFacts,
) -> Result<(), TransitionError> {
    let row = TRANSITIONS.iter().find(|(f, t, _)| *f == from && *t == to);
    match row {
        None => Err(TransitionError::NotAllowed { from, to }),
        Some((_, _, Guard::PaidLate)) if !facts.paid_late => {
            Err(TransitionError::NeedsPaidLate { from, to })
        }
        Some((_, _, Guard::PaidInTime)) if !facts.paid_in_time => {
            Err(TransitionError::NeedsPaidInTime { from, to })
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    /// The table from DESIGN §3, written out independently of `TRANSITIONS`, plus
    /// EXPIRED → AWAITING_CONFIRMATION for an order paid in time but seen after it expired.
    fn design_allows(from: OrderStatus, to: OrderStatus) -> bool {
        matches!(
            (from, to),
            (Pending, AwaitingPayment)
                | (Pending | AwaitingPayment, Cancelled)
                | (Pending | AwaitingPayment | PartialPayment, Expired)
                | (AwaitingPayment | PartialPayment, AwaitingConfirmation)
                | (AwaitingPayment, PartialPayment)
                | (AwaitingConfirmation, OptimisticConfirmed)
                | (AwaitingConfirmation | OptimisticConfirmed, ExecutingOrder)
                | (
                    AwaitingConfirmation | OptimisticConfirmed | ExecutingOrder,
                    Completed
                )
                | (AwaitingConfirmation | OptimisticConfirmed, AwaitingPayment)
                | (ExecutingOrder, Refunded | Failed)
                | (Completed | Expired, Refunded)
                | (Expired, AwaitingConfirmation)
        )
    }

    #[test]
    fn every_pair_matches_the_design() {
        let paid_late = TransitionFacts {
            paid_late: true,
            paid_in_time: true,
        };
        let mut allowed = 0;
        for &from in OrderStatus::ALL {
            for &to in OrderStatus::ALL {
                let got = check_transition(from, to, paid_late);
                if design_allows(from, to) {
                    assert_eq!(got, Ok(()), "{from} -> {to} should be allowed");
                    allowed += 1;
                } else {
                    assert_eq!(
                        got,
                        Err(TransitionError::NotAllowed { from, to }),
                        "{from} -> {to} should be refused"
                    );
                }
            }
        }
        assert_eq!(allowed, TRANSITIONS.len());
    }

    #[test]
    fn expired_to_refunded_needs_a_late_payment() {
        assert_eq!(
            check_transition(Expired, Refunded, TransitionFacts::default()),
            Err(TransitionError::NeedsPaidLate {
                from: Expired,
                to: Refunded
            })
        );
        // Completed orders can always be refunded.
        assert_eq!(
            check_transition(Completed, Refunded, TransitionFacts::default()),
            Ok(())
        );
    }

    #[test]
    fn an_expired_order_is_confirmed_only_when_it_was_paid_in_time() {
        let late = TransitionFacts {
            paid_late: true,
            paid_in_time: false,
        };
        assert_eq!(
            check_transition(Expired, AwaitingConfirmation, late),
            Err(TransitionError::NeedsPaidInTime {
                from: Expired,
                to: AwaitingConfirmation
            })
        );
        let in_time = TransitionFacts {
            paid_late: false,
            paid_in_time: true,
        };
        assert_eq!(
            check_transition(Expired, AwaitingConfirmation, in_time),
            Ok(())
        );
        // Nothing else opens up: an expired order never completes directly.
        assert!(check_transition(Expired, Completed, in_time).is_err());
    }

    #[test]
    fn no_self_transitions_and_final_states_only_refund() {
        for &s in OrderStatus::ALL {
            let late = TransitionFacts {
                paid_late: true,
                paid_in_time: false,
            };
            assert!(check_transition(s, s, late).is_err());
            if s.is_final() {
                for &to in OrderStatus::ALL {
                    if to != Refunded {
                        assert!(check_transition(s, to, late).is_err());
                    }
                }
            }
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for &s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            // Every status but PENDING emits an event on entry.
            assert_eq!(s.event_type().is_none(), s == Pending);
        }
        assert_eq!(OrderStatus::parse("pending"), None);
        assert_eq!(OrderMode::parse("DEPOSIT"), Some(OrderMode::Deposit));
        assert!(!OrderMode::Swap.is_supported());
        assert_eq!(
            EventType::parse("order.payment_late"),
            Some(EventType::OrderPaymentLate)
        );
        assert_eq!(EventType::ALL.len(), 18);
    }
}
