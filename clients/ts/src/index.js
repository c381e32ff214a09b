/** A typed client of the interrupt broker: runs, interrupts, live events, webhooks. */

export { Client } from "./client.js";
export {
  BrokerError,
  Conflict,
  FingerprintMismatch,
  Forbidden,
  Gone,
  InvalidInput,
  NotFound,
  Unauthorized,
  Unavailable,
  errorForResult,
} from "./errors.js";
export { SSEDecoder, Follower, TERMINAL_EVENTS } from "./follow.js";
export { linkFor, linkToken } from "./links.js";
export { Retry } from "./retry.js";
export { WebhookVerificationError, verifyWebhook } from "./webhooks.js";
