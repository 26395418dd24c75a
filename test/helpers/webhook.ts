/** The webhook receiver of the notification tests, shared with the notifier's own tests in src/. */
export * from '../../src/notifications/suite/webhook.js';
