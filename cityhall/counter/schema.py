"""The counter's tables: one migration, applied by cityhall.storage with the others.

Plain data only (no imports), so storage can read it without an import circle.

- ``kiosk_projection``: one row per kiosk, the fleet page's state, kept by ingest in the same transaction
  as the events it derives from. JSON text columns hold the generic parts (devices by role, the float
  by denomination) so a new device or denomination needs no migration.
- ``kiosk_day_projection``: one row per kiosk and JST day, the daily book's figures.
- ``projection_context``: what a later event needs from an earlier one (a payment key's method, a
  document's type and fee, a transaction's running money), per device.
- ``kiosk_contact``: what is not in the journal (clock drift from the last batch, the open silence alarm).
- ``counter_alarms`` + ``webhook_outbox``: alarms and the webhook messages to send for them.
- ``voucher_redemptions``: the primary key on the voucher id makes a second redemption impossible.
- ``daybook_signoffs`` / ``daybook_entries``: a signed day, and the corrections entered after it.
- ``staff_audit``: append-only (triggers refuse UPDATE and DELETE on both back ends).
"""

VERSION = 3
NAME = "counter: projection, alarms, webhook outbox, vouchers, daily book, roles, audit"

STATEMENTS = (
    """CREATE TABLE kiosk_projection (
           device_id       TEXT PRIMARY KEY,
           last_seq        BIGINT NOT NULL,
           mode            TEXT NOT NULL,
           mode_reason     TEXT NOT NULL DEFAULT '',
           mode_since      TEXT,
           devices         TEXT NOT NULL,
           cash            TEXT NOT NULL,
           last_event_at   TEXT,
           last_emptied_at TEXT,
           last_refill_at  TEXT)""",
    """CREATE TABLE kiosk_day_projection (
           device_id           TEXT NOT NULL,
           day                 TEXT NOT NULL,
           certificates        TEXT NOT NULL,
           transactions        INTEGER NOT NULL DEFAULT 0,
           cash_in             BIGINT NOT NULL DEFAULT 0,
           qr_in               BIGINT NOT NULL DEFAULT 0,
           change_out          BIGINT NOT NULL DEFAULT 0,
           refund_cash         BIGINT NOT NULL DEFAULT 0,
           refund_qr           BIGINT NOT NULL DEFAULT 0,
           vouchers_issued     INTEGER NOT NULL DEFAULT 0,
           vouchers_issued_yen BIGINT NOT NULL DEFAULT 0,
           unmatched_yen       BIGINT NOT NULL DEFAULT 0,
           emptyings           INTEGER NOT NULL DEFAULT 0,
           emptied_counted     BIGINT NOT NULL DEFAULT 0,
           emptied_expected    BIGINT NOT NULL DEFAULT 0,
           refilled_yen        BIGINT NOT NULL DEFAULT 0,
           PRIMARY KEY (device_id, day))""",
    "CREATE INDEX kiosk_day_projection_day ON kiosk_day_projection (day)",
    """CREATE TABLE projection_context (
           device_id TEXT NOT NULL,
           ctx_key   TEXT NOT NULL,
           value     TEXT NOT NULL,
           PRIMARY KEY (device_id, ctx_key))""",
    """CREATE TABLE kiosk_contact (
           device_id           TEXT PRIMARY KEY,
           clock_drift_seconds BIGINT,
           silent_alarm_id     TEXT)""",
    """CREATE TABLE counter_alarms (
           alarm_id        TEXT PRIMARY KEY,
           dedupe_key      TEXT NOT NULL UNIQUE,
           device_id       TEXT NOT NULL,
           kind            TEXT NOT NULL,
           severity        TEXT NOT NULL,
           amount_yen      BIGINT NOT NULL DEFAULT 0,
           params          TEXT NOT NULL,
           seq             BIGINT,
           raised_at       TEXT NOT NULL,
           acknowledged_by TEXT,
           acknowledged_at TEXT,
           ack_note        TEXT)""",
    "CREATE INDEX counter_alarms_raised ON counter_alarms (raised_at)",
    # The fleet page counts each kiosk's open alarms: answered from this index alone.
    "CREATE INDEX counter_alarms_open ON counter_alarms (acknowledged_at, device_id)",
    """CREATE TABLE webhook_outbox (
           message_id      TEXT PRIMARY KEY,
           alarm_id        TEXT NOT NULL REFERENCES counter_alarms (alarm_id),
           status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
           attempts        INTEGER NOT NULL DEFAULT 0,
           next_attempt_at TEXT NOT NULL,
           last_error      TEXT NOT NULL DEFAULT '',
           created_at      TEXT NOT NULL,
           done_at         TEXT)""",
    "CREATE INDEX webhook_outbox_due ON webhook_outbox (status, next_attempt_at)",
    """CREATE TABLE voucher_redemptions (
           voucher_id  TEXT PRIMARY KEY,
           code        TEXT NOT NULL,
           device_id   TEXT NOT NULL,
           amount_yen  BIGINT NOT NULL,
           issued_at   TEXT NOT NULL,
           reason      TEXT NOT NULL DEFAULT '',
           redeemed_by TEXT NOT NULL,
           redeemed_at TEXT NOT NULL,
           day         TEXT NOT NULL)""",
    "CREATE INDEX voucher_redemptions_day ON voucher_redemptions (day)",
    """CREATE TABLE daybook_signoffs (
           scope     TEXT NOT NULL,
           day       TEXT NOT NULL,
           signed_by TEXT NOT NULL,
           signed_at TEXT NOT NULL,
           figures   TEXT NOT NULL,
           PRIMARY KEY (scope, day))""",
    """CREATE TABLE daybook_entries (
           entry_id   TEXT PRIMARY KEY,
           scope      TEXT NOT NULL,
           day        TEXT NOT NULL,
           kind       TEXT NOT NULL,
           amount_yen BIGINT NOT NULL,
           note       TEXT NOT NULL,
           entered_by TEXT NOT NULL,
           entered_at TEXT NOT NULL)""",
    "CREATE INDEX daybook_entries_day ON daybook_entries (day)",
    """CREATE TABLE staff_audit (
           audit_id TEXT PRIMARY KEY,
           at       TEXT NOT NULL,
           username TEXT NOT NULL,
           action   TEXT NOT NULL,
           target   TEXT NOT NULL DEFAULT '',
           detail   TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX staff_audit_at ON staff_audit (at)",
    "ALTER TABLE staff_users ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer'",
    # Accounts made before roles existed could do everything the dashboard offered; keep them able to.
    "UPDATE staff_users SET role = 'admin'",
)

SQLITE_ONLY = (
    """CREATE TRIGGER staff_audit_no_update BEFORE UPDATE ON staff_audit
       BEGIN SELECT RAISE(ABORT, 'the staff audit log is append-only'); END""",
    """CREATE TRIGGER staff_audit_no_delete BEFORE DELETE ON staff_audit
       BEGIN SELECT RAISE(ABORT, 'the staff audit log is append-only'); END""",
)

POSTGRES_ONLY = (
    """CREATE FUNCTION staff_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'the staff audit log is append-only'; END $$""",
    """CREATE TRIGGER staff_audit_append_only BEFORE UPDATE OR DELETE ON staff_audit
       FOR EACH ROW EXECUTE FUNCTION staff_audit_append_only()""",
)
