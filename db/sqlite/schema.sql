-- Signet schema for sqlite, generated from the Alembic migrations by
-- `make ddl` (python -m signet.store.ddl sqlite). Do not edit by hand.

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);


CREATE TABLE audit_head (
    id INTEGER NOT NULL, 
    last_seq INTEGER NOT NULL, 
    last_hash VARCHAR(64) NOT NULL, 
    CONSTRAINT pk_audit_head PRIMARY KEY (id)
);

CREATE TABLE audit_records (
    seq INTEGER NOT NULL, 
    at VARCHAR(40) NOT NULL, 
    event VARCHAR(64) NOT NULL, 
    actor VARCHAR(128) NOT NULL, 
    subject VARCHAR(256), 
    outcome VARCHAR(16) NOT NULL, 
    details TEXT NOT NULL, 
    prev_hash VARCHAR(64) NOT NULL, 
    record_hash VARCHAR(64) NOT NULL, 
    CONSTRAINT pk_audit_records PRIMARY KEY (seq)
);

CREATE INDEX ix_audit_records_event ON audit_records (event);

CREATE TABLE users (
    id INTEGER NOT NULL, 
    username VARCHAR(128) NOT NULL, 
    display_name VARCHAR(256) NOT NULL, 
    email VARCHAR(320), 
    status VARCHAR(16) NOT NULL, 
    created_at DATETIME NOT NULL, 
    updated_at DATETIME NOT NULL, 
    CONSTRAINT pk_users PRIMARY KEY (id), 
    CONSTRAINT uq_users_username UNIQUE (username)
);

CREATE TABLE access_tokens (
    id INTEGER NOT NULL, 
    token_hash VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    scope VARCHAR(64) NOT NULL, 
    auth_methods VARCHAR(128) NOT NULL, 
    loa VARCHAR(16) NOT NULL, 
    created_at DATETIME NOT NULL, 
    expires_at DATETIME NOT NULL, 
    revoked BOOLEAN NOT NULL, 
    CONSTRAINT pk_access_tokens PRIMARY KEY (id), 
    CONSTRAINT fk_access_tokens_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_access_tokens_token_hash UNIQUE (token_hash)
);

CREATE INDEX ix_access_tokens_user_id ON access_tokens (user_id);

CREATE TABLE authenticators (
    id INTEGER NOT NULL, 
    user_id INTEGER NOT NULL, 
    kind VARCHAR(32) NOT NULL, 
    secret TEXT, 
    address VARCHAR(320), 
    status VARCHAR(16) NOT NULL, 
    failed_attempts INTEGER NOT NULL, 
    created_at DATETIME NOT NULL, 
    CONSTRAINT pk_authenticators PRIMARY KEY (id), 
    CONSTRAINT fk_authenticators_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE INDEX ix_authenticators_user_id ON authenticators (user_id);

CREATE TABLE credentials (
    id VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    description VARCHAR(256), 
    key_label VARCHAR(128) NOT NULL, 
    key_type VARCHAR(8) NOT NULL, 
    key_size INTEGER NOT NULL, 
    curve VARCHAR(32), 
    status VARCHAR(16) NOT NULL, 
    activation VARCHAR(16) NOT NULL, 
    pin_hash TEXT, 
    scal VARCHAR(4) NOT NULL, 
    multisign INTEGER NOT NULL, 
    locked BOOLEAN NOT NULL, 
    failed_attempts INTEGER NOT NULL, 
    created_at DATETIME NOT NULL, 
    updated_at DATETIME NOT NULL, 
    CONSTRAINT pk_credentials PRIMARY KEY (id), 
    CONSTRAINT fk_credentials_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_credentials_key_label UNIQUE (key_label)
);

CREATE INDEX ix_credentials_user_id ON credentials (user_id);

CREATE TABLE certificates (
    id INTEGER NOT NULL, 
    credential_id VARCHAR(64), 
    role VARCHAR(16) NOT NULL, 
    position INTEGER NOT NULL, 
    serial VARCHAR(64) NOT NULL, 
    subject VARCHAR(512) NOT NULL, 
    issuer VARCHAR(512) NOT NULL, 
    not_before DATETIME NOT NULL, 
    not_after DATETIME NOT NULL, 
    der BLOB NOT NULL, 
    ca_name VARCHAR(128), 
    revoked_at DATETIME, 
    CONSTRAINT pk_certificates PRIMARY KEY (id), 
    CONSTRAINT fk_certificates_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id)
);

CREATE INDEX ix_certificates_credential_id ON certificates (credential_id);

CREATE TABLE otp_challenges (
    id INTEGER NOT NULL, 
    credential_id VARCHAR(64) NOT NULL, 
    code_hash VARCHAR(64) NOT NULL, 
    created_at DATETIME NOT NULL, 
    expires_at DATETIME NOT NULL, 
    used BOOLEAN NOT NULL, 
    CONSTRAINT pk_otp_challenges PRIMARY KEY (id), 
    CONSTRAINT fk_otp_challenges_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id)
);

CREATE INDEX ix_otp_challenges_credential_id ON otp_challenges (credential_id);

CREATE TABLE sads (
    id INTEGER NOT NULL, 
    sad_hash VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    credential_id VARCHAR(64) NOT NULL, 
    hash_algorithm VARCHAR(64), 
    hashes TEXT NOT NULL, 
    num_signatures INTEGER NOT NULL, 
    remaining INTEGER NOT NULL, 
    scal VARCHAR(4) NOT NULL, 
    created_at DATETIME NOT NULL, 
    expires_at DATETIME NOT NULL, 
    CONSTRAINT pk_sads PRIMARY KEY (id), 
    CONSTRAINT fk_sads_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id), 
    CONSTRAINT fk_sads_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_sads_sad_hash UNIQUE (sad_hash)
);

CREATE INDEX ix_sads_credential_id ON sads (credential_id);

INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING version_num;


ALTER TABLE credentials ADD COLUMN epoch INTEGER DEFAULT '0' NOT NULL;

ALTER TABLE credentials ADD COLUMN activation_address VARCHAR(320);

ALTER TABLE credentials ADD COLUMN seal VARCHAR(64);

ALTER TABLE sads ADD COLUMN spent TEXT DEFAULT '' NOT NULL;

ALTER TABLE otp_challenges ADD COLUMN purpose VARCHAR(16) DEFAULT 'authorize' NOT NULL;

ALTER TABLE otp_challenges ADD COLUMN binding TEXT;

ALTER TABLE audit_records ADD COLUMN mac VARCHAR(64);

CREATE TABLE login_throttle (
    "key" VARCHAR(300) NOT NULL, 
    failures INTEGER NOT NULL, 
    window_start DATETIME NOT NULL, 
    blocked_until DATETIME, 
    CONSTRAINT pk_login_throttle PRIMARY KEY ("key")
);

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';


CREATE TABLE refresh_tokens (
    id INTEGER NOT NULL, 
    token_hash VARCHAR(64) NOT NULL, 
    family VARCHAR(32) NOT NULL, 
    user_id INTEGER NOT NULL, 
    access_token_hash VARCHAR(64) NOT NULL, 
    created_at DATETIME NOT NULL, 
    expires_at DATETIME NOT NULL, 
    used BOOLEAN NOT NULL, 
    revoked BOOLEAN NOT NULL, 
    CONSTRAINT pk_refresh_tokens PRIMARY KEY (id), 
    CONSTRAINT fk_refresh_tokens_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_refresh_tokens_token_hash UNIQUE (token_hash)
);

CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family);

CREATE INDEX ix_refresh_tokens_user_id ON refresh_tokens (user_id);

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';


CREATE TABLE event_cursors (
    sink VARCHAR(64) NOT NULL, 
    last_seq INTEGER NOT NULL, 
    last_hash VARCHAR(64) NOT NULL, 
    holder VARCHAR(128), 
    lease_until DATETIME, 
    CONSTRAINT pk_event_cursors PRIMARY KEY (sink)
);

UPDATE alembic_version SET version_num='0004' WHERE alembic_version.version_num = '0003';


ALTER TABLE users ADD COLUMN phone VARCHAR(16);

UPDATE alembic_version SET version_num='0005' WHERE alembic_version.version_num = '0004';


ALTER TABLE credentials ADD COLUMN policy VARCHAR(32) DEFAULT 'basic' NOT NULL;

UPDATE alembic_version SET version_num='0006' WHERE alembic_version.version_num = '0005';


CREATE TABLE client_certificates (
    id INTEGER NOT NULL, 
    user_id INTEGER NOT NULL, 
    fingerprint VARCHAR(64) NOT NULL, 
    label VARCHAR(128) NOT NULL, 
    subject VARCHAR(512) NOT NULL, 
    created_at DATETIME NOT NULL, 
    CONSTRAINT pk_client_certificates PRIMARY KEY (id), 
    CONSTRAINT fk_client_certificates_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_client_certificates_fingerprint UNIQUE (fingerprint)
);

CREATE INDEX ix_client_certificates_user_id ON client_certificates (user_id);

UPDATE alembic_version SET version_num='0007' WHERE alembic_version.version_num = '0006';


CREATE TABLE mobile_devices (
    id VARCHAR(32) NOT NULL, 
    credential_id VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    label VARCHAR(128) NOT NULL, 
    public_key TEXT NOT NULL, 
    attestation TEXT, 
    status VARCHAR(16) NOT NULL, 
    seal VARCHAR(64) NOT NULL, 
    created_at DATETIME NOT NULL, 
    CONSTRAINT pk_mobile_devices PRIMARY KEY (id), 
    CONSTRAINT fk_mobile_devices_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id), 
    CONSTRAINT fk_mobile_devices_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE INDEX ix_mobile_devices_credential_id ON mobile_devices (credential_id);

CREATE TABLE mobile_requests (
    id VARCHAR(32) NOT NULL, 
    credential_id VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    device_id VARCHAR(32) NOT NULL, 
    hash_algorithm VARCHAR(64), 
    hashes TEXT NOT NULL, 
    num_signatures INTEGER NOT NULL, 
    labels TEXT NOT NULL, 
    description VARCHAR(512), 
    origin VARCHAR(320) NOT NULL, 
    nonce VARCHAR(64) NOT NULL, 
    assurance TEXT NOT NULL, 
    content_mac VARCHAR(64) NOT NULL, 
    state VARCHAR(16) NOT NULL, 
    approval TEXT, 
    created_at DATETIME NOT NULL, 
    expires_at DATETIME NOT NULL, 
    decided_at DATETIME, 
    CONSTRAINT pk_mobile_requests PRIMARY KEY (id), 
    CONSTRAINT fk_mobile_requests_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id), 
    CONSTRAINT fk_mobile_requests_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE INDEX ix_mobile_requests_credential_id ON mobile_requests (credential_id);

CREATE INDEX ix_mobile_requests_device_id ON mobile_requests (device_id);

CREATE INDEX ix_mobile_requests_state ON mobile_requests (state);

UPDATE alembic_version SET version_num='0008' WHERE alembic_version.version_num = '0007';


CREATE TABLE oauth2_clients (
    id INTEGER NOT NULL, 
    client_id VARCHAR(64) NOT NULL, 
    name VARCHAR(128) NOT NULL, 
    secret_hash VARCHAR(256), 
    redirect_uris TEXT NOT NULL, 
    seal VARCHAR(64) NOT NULL, 
    created_at DATETIME NOT NULL, 
    CONSTRAINT pk_oauth2_clients PRIMARY KEY (id), 
    CONSTRAINT uq_oauth2_clients_client_id UNIQUE (client_id)
);

CREATE TABLE oauth2_codes (
    id INTEGER NOT NULL, 
    code_hash VARCHAR(64) NOT NULL, 
    client_id VARCHAR(64) NOT NULL, 
    user_id INTEGER, 
    used BOOLEAN NOT NULL, 
    grant TEXT, 
    access_token_hash VARCHAR(64), 
    created_at DATETIME NOT NULL, 
    expires_at DATETIME NOT NULL, 
    CONSTRAINT pk_oauth2_codes PRIMARY KEY (id), 
    CONSTRAINT fk_oauth2_codes_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_oauth2_codes_code_hash UNIQUE (code_hash)
);

CREATE INDEX ix_oauth2_codes_expires_at ON oauth2_codes (expires_at);

CREATE INDEX ix_oauth2_codes_user_id ON oauth2_codes (user_id);

UPDATE alembic_version SET version_num='0009' WHERE alembic_version.version_num = '0008';


CREATE TABLE federation_spent (
    digest VARCHAR(64) NOT NULL, 
    provider VARCHAR(32) NOT NULL, 
    expires_at DATETIME NOT NULL, 
    CONSTRAINT pk_federation_spent PRIMARY KEY (digest)
);

CREATE INDEX ix_federation_spent_expires_at ON federation_spent (expires_at);

UPDATE alembic_version SET version_num='0010' WHERE alembic_version.version_num = '0009';


CREATE TABLE mobile_push_subscriptions (
    device_id VARCHAR(32) NOT NULL, 
    endpoint TEXT NOT NULL, 
    p256dh VARCHAR(128) NOT NULL, 
    auth VARCHAR(64) NOT NULL, 
    updated_at DATETIME NOT NULL, 
    CONSTRAINT pk_mobile_push_subscriptions PRIMARY KEY (device_id), 
    CONSTRAINT fk_mobile_push_subscriptions_device_id_mobile_devices FOREIGN KEY(device_id) REFERENCES mobile_devices (id)
);

UPDATE alembic_version SET version_num='0011' WHERE alembic_version.version_num = '0010';


ALTER TABLE mobile_devices ADD COLUMN kind VARCHAR(16) DEFAULT 'mobile' NOT NULL;

ALTER TABLE mobile_devices ADD COLUMN webauthn_id VARCHAR(1400);

ALTER TABLE mobile_devices ADD COLUMN sign_count INTEGER DEFAULT '0' NOT NULL;

UPDATE alembic_version SET version_num='0012' WHERE alembic_version.version_num = '0011';


CREATE TABLE oauth2_device_codes (
    id INTEGER NOT NULL, 
    device_code_hash VARCHAR(64) NOT NULL, 
    user_code_hash VARCHAR(64) NOT NULL, 
    client_id VARCHAR(64) NOT NULL, 
    status VARCHAR(16) NOT NULL, 
    user_id INTEGER, 
    approval TEXT, 
    poll_interval INTEGER NOT NULL, 
    last_poll_at DATETIME, 
    access_token_hash VARCHAR(64), 
    created_at DATETIME NOT NULL, 
    expires_at DATETIME NOT NULL, 
    CONSTRAINT pk_oauth2_device_codes PRIMARY KEY (id), 
    CONSTRAINT fk_oauth2_device_codes_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_oauth2_device_codes_device_code_hash UNIQUE (device_code_hash), 
    CONSTRAINT uq_oauth2_device_codes_user_code_hash UNIQUE (user_code_hash)
);

CREATE INDEX ix_oauth2_device_codes_expires_at ON oauth2_device_codes (expires_at);

CREATE INDEX ix_oauth2_device_codes_user_id ON oauth2_device_codes (user_id);

UPDATE alembic_version SET version_num='0013' WHERE alembic_version.version_num = '0012';


CREATE INDEX ix_access_tokens_expires_at ON access_tokens (expires_at);

CREATE INDEX ix_refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE INDEX ix_sads_expires_at ON sads (expires_at);

CREATE INDEX ix_otp_challenges_expires_at ON otp_challenges (expires_at);

CREATE INDEX ix_mobile_requests_expires_at ON mobile_requests (expires_at);

UPDATE alembic_version SET version_num='0014' WHERE alembic_version.version_num = '0013';


ALTER TABLE refresh_tokens ADD COLUMN client_id VARCHAR(64);

CREATE INDEX ix_refresh_tokens_access_token_hash ON refresh_tokens (access_token_hash);

UPDATE alembic_version SET version_num='0015' WHERE alembic_version.version_num = '0014';

