-- Flask-Stripe-Billing on sqlite: the library's tables, then the billing
-- columns of the user table (printed by: flask billing schema).

CREATE TABLE stripe_billing_entitlements (
	customer_id VARCHAR(255) NOT NULL,
	features TEXT NOT NULL,
	last_event_at DATETIME,
	last_event_id VARCHAR(255),
	updated_at DATETIME NOT NULL,
	PRIMARY KEY (customer_id)
);

CREATE TABLE stripe_billing_events (
	id VARCHAR(255) NOT NULL,
	type VARCHAR(100) NOT NULL,
	created DATETIME NOT NULL,
	customer_id VARCHAR(255),
	user_id VARCHAR(255),
	status VARCHAR(20) NOT NULL,
	error TEXT,
	payload TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	received_at DATETIME NOT NULL,
	processed_at DATETIME,
	PRIMARY KEY (id)
);

CREATE INDEX ix_stripe_billing_events_customer_id ON stripe_billing_events (customer_id);

CREATE INDEX ix_stripe_billing_events_status ON stripe_billing_events (status);

CREATE INDEX ix_stripe_billing_events_type ON stripe_billing_events (type);

CREATE TABLE stripe_billing_purchases (
	id VARCHAR(255) NOT NULL,
	user_id VARCHAR(255),
	customer_id VARCHAR(255),
	product VARCHAR(100),
	quantity INTEGER,
	amount BIGINT,
	currency VARCHAR(10),
	payment_intent_id VARCHAR(255),
	checkout_session_id VARCHAR(255),
	charge_id VARCHAR(255),
	status VARCHAR(30) NOT NULL,
	payment_status VARCHAR(20),
	amount_refunded BIGINT NOT NULL,
	refunds TEXT NOT NULL,
	charge_amount_refunded BIGINT,
	charge_event_at DATETIME,
	dispute_id VARCHAR(255),
	dispute_status VARCHAR(30),
	dispute_event_at DATETIME,
	created DATETIME,
	last_event_at DATETIME,
	updated_at DATETIME NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_stripe_billing_purchases_account ON stripe_billing_purchases (user_id, created);

CREATE TABLE stripe_billing_subscriptions (
	id VARCHAR(255) NOT NULL,
	user_id VARCHAR(255) NOT NULL,
	customer_id VARCHAR(255),
	status VARCHAR(50) NOT NULL,
	price_ids TEXT NOT NULL,
	"plan" VARCHAR(50) NOT NULL,
	quantity INTEGER,
	trial_end DATETIME,
	current_period_end DATETIME,
	cancel_at_period_end BOOLEAN NOT NULL,
	cancel_at DATETIME,
	ended_at DATETIME,
	created DATETIME,
	last_event_at DATETIME,
	updated_at DATETIME NOT NULL,
	pending_update TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_stripe_billing_subscriptions_customer_id ON stripe_billing_subscriptions (customer_id);

CREATE INDEX ix_stripe_billing_subscriptions_user_id ON stripe_billing_subscriptions (user_id);

CREATE TABLE stripe_billing_usage (
	identifier VARCHAR(100) NOT NULL,
	user_id VARCHAR(255) NOT NULL,
	customer_id VARCHAR(255),
	event_name VARCHAR(100) NOT NULL,
	value BIGINT NOT NULL,
	timestamp DATETIME NOT NULL,
	status VARCHAR(20) NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at DATETIME,
	first_attempt_at DATETIME,
	sent_at DATETIME,
	error TEXT,
	reported_at DATETIME NOT NULL,
	PRIMARY KEY (identifier)
);

CREATE INDEX ix_stripe_billing_usage_account ON stripe_billing_usage (user_id, event_name, timestamp);

CREATE INDEX ix_stripe_billing_usage_due ON stripe_billing_usage (status, next_attempt_at);

CREATE INDEX ix_stripe_billing_usage_reported ON stripe_billing_usage (user_id, reported_at);

ALTER TABLE user ADD COLUMN "plan" VARCHAR(50) DEFAULT 'free' NOT NULL;

ALTER TABLE user ADD COLUMN stripe_customer_id VARCHAR(255);

ALTER TABLE user ADD COLUMN stripe_subscription_id VARCHAR(255);

ALTER TABLE user ADD COLUMN stripe_subscription_status VARCHAR(50);

ALTER TABLE user ADD COLUMN current_period_end DATETIME;

ALTER TABLE user ADD COLUMN cancel_at_period_end BOOLEAN DEFAULT false NOT NULL;

ALTER TABLE user ADD COLUMN updated_at DATETIME;

ALTER TABLE user ADD COLUMN trial_end DATETIME;

ALTER TABLE user ADD COLUMN subscription_quantity INTEGER;

CREATE UNIQUE INDEX ix_user_stripe_customer_id ON user (stripe_customer_id);
