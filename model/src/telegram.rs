//! Telegram Bot API semantics for one bot: the update queue, offsets, long polls and the
//! 409 conflict when two pollers overlap.
//!
//! This is the server side as a pure state machine, following the Bot API documentation:
//! an update is confirmed once getUpdates is called with an offset above its id;
//! unconfirmed updates are delivered again; a new getUpdates while another is in progress
//! ends the earlier one with 409 `Conflict: terminated by other getUpdates request`. The
//! sim runs it directly and `lifeboat serve telegram` wraps it in HTTP.

use crate::history::{Event, PollOutcome};
use crate::ids::NodeId;
use crate::lease::Reply;
use crate::proto::{From, ReqId, Response, TgResp, Update};
use crate::time::Millis;
use std::collections::VecDeque;

/// Telegram's description for the conflict.
pub const CONFLICT: &str =
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

/// The most updates one getUpdates returns (the API's default `limit`).
pub const MAX_UPDATES: usize = 100;

/// An injected API fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFault {
    /// Every call answers this code (500, 502, 429 …).
    Errors {
        /// The code.
        code: u16,
    },
}

#[derive(Clone, Debug)]
struct ActivePoll {
    /// `None` for a foreign poller injected as a fault.
    who: Option<From>,
    req: ReqId,
    id: u64,
    deadline: Millis,
}

/// One bot's server-side state.
#[derive(Clone, Debug)]
pub struct BotApi {
    next_update_id: i64,
    next_message_id: i64,
    next_poll_id: u64,
    queue: VecDeque<Update>,
    active: Option<ActivePoll>,
    fault: Option<ApiFault>,
}

impl Default for BotApi {
    fn default() -> Self {
        BotApi::new()
    }
}

impl BotApi {
    /// An empty bot; update ids start at an arbitrary large number, as Telegram's do.
    pub fn new() -> BotApi {
        BotApi {
            next_update_id: 100_000,
            next_message_id: 1,
            next_poll_id: 1,
            queue: VecDeque::new(),
            active: None,
            fault: None,
        }
    }

    /// Sets or clears an injected fault.
    pub fn set_fault(&mut self, fault: Option<ApiFault>) {
        self.fault = fault;
    }

    /// Unconfirmed updates.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// When the active poll times out, if there is one.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.active.as_ref().map(|p| p.deadline)
    }

    /// Ends the active poll if its timeout has passed.
    pub fn advance(&mut self, now: Millis, replies: &mut Vec<Reply>, events: &mut Vec<Event>) {
        if self.active.as_ref().is_some_and(|p| p.deadline <= now) {
            let p = self.active.take().expect("checked above");
            events.push(Event::PollEnded {
                node: p.who.map(|f| f.node),
                poll: p.id,
                outcome: PollOutcome::Timeout,
                by: None,
            });
            if let Some(to) = p.who {
                replies.push(Reply {
                    to,
                    req: p.req,
                    resp: Response::Telegram(TgResp::Updates(Vec::new())),
                });
            }
        }
    }

    /// A user sends the bot a message: queue it, and hand it to a waiting poll.
    pub fn user_message(
        &mut self,
        chat_id: i64,
        text: &str,
        replies: &mut Vec<Reply>,
        events: &mut Vec<Event>,
    ) -> i64 {
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        self.queue.push_back(Update {
            update_id,
            chat_id,
            text: text.to_string(),
        });
        events.push(Event::ChatSent {
            update_id,
            text: text.to_string(),
        });
        if let Some(p) = self.active.take() {
            self.answer_poll(p, replies, events);
        }
        update_id
    }

    fn answer_poll(&mut self, p: ActivePoll, replies: &mut Vec<Reply>, events: &mut Vec<Event>) {
        let updates: Vec<Update> = self.queue.iter().take(MAX_UPDATES).cloned().collect();
        events.push(Event::PollEnded {
            node: p.who.map(|f| f.node),
            poll: p.id,
            outcome: PollOutcome::Updates(updates.len() as u32),
            by: None,
        });
        if let Some(to) = p.who {
            for u in &updates {
                events.push(Event::ChatDelivered {
                    update_id: u.update_id,
                    node: to.node,
                });
            }
            replies.push(Reply {
                to,
                req: p.req,
                resp: Response::Telegram(TgResp::Updates(updates)),
            });
        }
    }

    fn error(&self, code: u16) -> TgResp {
        TgResp::Error {
            code,
            description: match code {
                429 => "Too Many Requests: retry after 1".into(),
                c => format!("Internal Server Error ({c})"),
            },
            retry_after: (code == 429).then_some(Millis::secs(1)),
        }
    }

    /// `getUpdates` from a node (`who = Some`) or a foreign poller (`who = None`).
    #[allow(clippy::too_many_arguments)]
    pub fn get_updates(
        &mut self,
        now: Millis,
        who: Option<From>,
        req: ReqId,
        offset: Option<i64>,
        timeout: Millis,
        replies: &mut Vec<Reply>,
        events: &mut Vec<Event>,
    ) {
        self.advance(now, replies, events);
        if let Some(ApiFault::Errors { code }) = self.fault {
            if let Some(to) = who {
                replies.push(Reply {
                    to,
                    req,
                    resp: Response::Telegram(self.error(code)),
                });
            }
            return;
        }
        let id = self.next_poll_id;
        self.next_poll_id += 1;
        events.push(Event::PollStarted {
            node: who.map(|f| f.node),
            poll: id,
            offset,
            timeout,
        });
        if let Some(old) = self.active.take() {
            events.push(Event::PollEnded {
                node: old.who.map(|f| f.node),
                poll: old.id,
                outcome: PollOutcome::Conflict,
                by: Some(who.map(|f| f.node)),
            });
            if let Some(to) = old.who {
                replies.push(Reply {
                    to,
                    req: old.req,
                    resp: Response::Telegram(TgResp::Error {
                        code: 409,
                        description: CONFLICT.into(),
                        retry_after: None,
                    }),
                });
            }
        }
        match offset {
            Some(o) if o >= 0 => self.queue.retain(|u| u.update_id >= o),
            Some(o) => {
                // A negative offset keeps only the last |o| updates and forgets the rest.
                let keep = o.unsigned_abs() as usize;
                while self.queue.len() > keep {
                    self.queue.pop_front();
                }
            }
            None => {}
        }
        let poll = ActivePoll {
            who,
            req,
            id,
            deadline: now + timeout,
        };
        if !self.queue.is_empty() || timeout == Millis::ZERO {
            self.answer_poll(poll, replies, events);
        } else {
            self.active = Some(poll);
        }
    }

    /// `sendMessage` from a node.
    #[allow(clippy::too_many_arguments)]
    pub fn send_message(
        &mut self,
        who: From,
        req: ReqId,
        reply_to: i64,
        token: Option<u64>,
        replies: &mut Vec<Reply>,
        events: &mut Vec<Event>,
    ) {
        let resp = if let Some(ApiFault::Errors { code }) = self.fault {
            self.error(code)
        } else {
            events.push(Event::ChatReplied {
                update_id: reply_to,
                node: who.node,
                incarnation: Some(who.incarnation),
                token,
                sent_at: None,
            });
            let message_id = self.next_message_id;
            self.next_message_id += 1;
            TgResp::Sent { message_id }
        };
        replies.push(Reply {
            to: who,
            req,
            resp: Response::Telegram(resp),
        });
    }

    /// One process incarnation's connection closed: its poll, if any, ends.
    pub fn disconnect_from(&mut self, who: From, events: &mut Vec<Event>) {
        if self.active.as_ref().is_some_and(|p| p.who == Some(who)) {
            let p = self.active.take().expect("checked above");
            events.push(Event::PollEnded {
                node: Some(who.node),
                poll: p.id,
                outcome: PollOutcome::Closed,
                by: None,
            });
        }
    }

    /// The poller's connection closed (its process was killed or stopped): its poll ends.
    pub fn disconnect(&mut self, node: NodeId, events: &mut Vec<Event>) {
        if self
            .active
            .as_ref()
            .is_some_and(|p| p.who.is_some_and(|f| f.node == node))
        {
            let p = self.active.take().expect("checked above");
            events.push(Event::PollEnded {
                node: Some(node),
                poll: p.id,
                outcome: PollOutcome::Closed,
                by: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(n: u8) -> Option<From> {
        Some(From {
            node: NodeId(n),
            incarnation: 1,
        })
    }

    #[test]
    fn overlapping_polls_conflict() {
        let mut api = BotApi::new();
        let (mut r, mut e) = (Vec::new(), Vec::new());
        api.get_updates(Millis(0), who(0), 1, None, Millis(30_000), &mut r, &mut e);
        assert!(r.is_empty(), "the first poll waits");
        api.get_updates(Millis(10), who(1), 1, None, Millis(30_000), &mut r, &mut e);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].to.node, NodeId(0));
        assert!(matches!(
            r[0].resp,
            Response::Telegram(TgResp::Error { code: 409, .. })
        ));
    }

    #[test]
    fn unconfirmed_updates_are_redelivered_until_offset_moves() {
        let mut api = BotApi::new();
        let (mut r, mut e) = (Vec::new(), Vec::new());
        let id = api.user_message(7, "ping", &mut r, &mut e);
        api.get_updates(Millis(0), who(0), 1, None, Millis(1000), &mut r, &mut e);
        api.get_updates(Millis(1), who(1), 1, None, Millis(1000), &mut r, &mut e);
        let delivered: Vec<_> = e
            .iter()
            .filter(|ev| matches!(ev, Event::ChatDelivered { .. }))
            .collect();
        assert_eq!(delivered.len(), 2, "not confirmed, so delivered twice");
        r.clear();
        api.get_updates(
            Millis(2),
            who(1),
            1,
            Some(id + 1),
            Millis(0),
            &mut r,
            &mut e,
        );
        assert_eq!(api.pending(), 0);
        assert_eq!(r[0].resp, Response::Telegram(TgResp::Updates(vec![])));
    }

    #[test]
    fn long_poll_times_out_empty() {
        let mut api = BotApi::new();
        let (mut r, mut e) = (Vec::new(), Vec::new());
        api.get_updates(Millis(0), who(0), 1, None, Millis(1000), &mut r, &mut e);
        api.advance(Millis(999), &mut r, &mut e);
        assert!(r.is_empty());
        api.advance(Millis(1000), &mut r, &mut e);
        assert_eq!(r.len(), 1);
    }
}
