-- Signet schema for mssql, generated from the Alembic migrations by
-- `make ddl` (python -m signet.store.ddl mssql). Do not edit by hand.

BEGIN TRANSACTION;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

GO


CREATE TABLE audit_head (
    id INTEGER NOT NULL, 
    last_seq BIGINT NOT NULL, 
    last_hash VARCHAR(64) NOT NULL, 
    CONSTRAINT pk_audit_head PRIMARY KEY (id)
);

GO

CREATE TABLE audit_records (
    seq BIGINT NOT NULL, 
    at VARCHAR(40) NOT NULL, 
    event VARCHAR(64) NOT NULL, 
    actor VARCHAR(128) NOT NULL, 
    subject VARCHAR(256) NULL, 
    outcome VARCHAR(16) NOT NULL, 
    details TEXT NOT NULL, 
    prev_hash VARCHAR(64) NOT NULL, 
    record_hash VARCHAR(64) NOT NULL, 
    CONSTRAINT pk_audit_records PRIMARY KEY (seq)
);

GO

CREATE INDEX ix_audit_records_event ON audit_records (event);

GO

CREATE TABLE users (
    id INTEGER NOT NULL IDENTITY, 
    username VARCHAR(128) NOT NULL, 
    display_name VARCHAR(256) NOT NULL, 
    email VARCHAR(320) NULL, 
    status VARCHAR(16) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    updated_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_users PRIMARY KEY (id), 
    CONSTRAINT uq_users_username UNIQUE (username)
);

GO

CREATE TABLE access_tokens (
    id INTEGER NOT NULL IDENTITY, 
    token_hash VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    scope VARCHAR(64) NOT NULL, 
    auth_methods VARCHAR(128) NOT NULL, 
    loa VARCHAR(16) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    revoked BIT NOT NULL, 
    CONSTRAINT pk_access_tokens PRIMARY KEY (id), 
    CONSTRAINT fk_access_tokens_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_access_tokens_token_hash UNIQUE (token_hash)
);

GO

CREATE INDEX ix_access_tokens_user_id ON access_tokens (user_id);

GO

CREATE TABLE authenticators (
    id INTEGER NOT NULL IDENTITY, 
    user_id INTEGER NOT NULL, 
    kind VARCHAR(32) NOT NULL, 
    secret TEXT NULL, 
    address VARCHAR(320) NULL, 
    status VARCHAR(16) NOT NULL, 
    failed_attempts INTEGER NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_authenticators PRIMARY KEY (id), 
    CONSTRAINT fk_authenticators_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

GO

CREATE INDEX ix_authenticators_user_id ON authenticators (user_id);

GO

CREATE TABLE credentials (
    id VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    description VARCHAR(256) NULL, 
    key_label VARCHAR(128) NOT NULL, 
    key_type VARCHAR(8) NOT NULL, 
    key_size INTEGER NOT NULL, 
    curve VARCHAR(32) NULL, 
    status VARCHAR(16) NOT NULL, 
    activation VARCHAR(16) NOT NULL, 
    pin_hash TEXT NULL, 
    scal VARCHAR(4) NOT NULL, 
    multisign INTEGER NOT NULL, 
    locked BIT NOT NULL, 
    failed_attempts INTEGER NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    updated_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_credentials PRIMARY KEY (id), 
    CONSTRAINT fk_credentials_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_credentials_key_label UNIQUE (key_label)
);

GO

CREATE INDEX ix_credentials_user_id ON credentials (user_id);

GO

CREATE TABLE certificates (
    id INTEGER NOT NULL IDENTITY, 
    credential_id VARCHAR(64) NULL, 
    role VARCHAR(16) NOT NULL, 
    position INTEGER NOT NULL, 
    serial VARCHAR(64) NOT NULL, 
    subject VARCHAR(512) NOT NULL, 
    issuer VARCHAR(512) NOT NULL, 
    not_before DATETIMEOFFSET NOT NULL, 
    not_after DATETIMEOFFSET NOT NULL, 
    der IMAGE NOT NULL, 
    ca_name VARCHAR(128) NULL, 
    revoked_at DATETIMEOFFSET NULL, 
    CONSTRAINT pk_certificates PRIMARY KEY (id), 
    CONSTRAINT fk_certificates_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id)
);

GO

CREATE INDEX ix_certificates_credential_id ON certificates (credential_id);

GO

CREATE TABLE otp_challenges (
    id INTEGER NOT NULL IDENTITY, 
    credential_id VARCHAR(64) NOT NULL, 
    code_hash VARCHAR(64) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    used BIT NOT NULL, 
    CONSTRAINT pk_otp_challenges PRIMARY KEY (id), 
    CONSTRAINT fk_otp_challenges_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id)
);

GO

CREATE INDEX ix_otp_challenges_credential_id ON otp_challenges (credential_id);

GO

CREATE TABLE sads (
    id INTEGER NOT NULL IDENTITY, 
    sad_hash VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    credential_id VARCHAR(64) NOT NULL, 
    hash_algorithm VARCHAR(64) NULL, 
    hashes TEXT NOT NULL, 
    num_signatures INTEGER NOT NULL, 
    remaining INTEGER NOT NULL, 
    scal VARCHAR(4) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_sads PRIMARY KEY (id), 
    CONSTRAINT fk_sads_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id), 
    CONSTRAINT fk_sads_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_sads_sad_hash UNIQUE (sad_hash)
);

GO

CREATE INDEX ix_sads_credential_id ON sads (credential_id);

GO

SET IDENTITY_INSERT audit_head ON;

GO

INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

GO

SET IDENTITY_INSERT audit_head OFF;

GO

INSERT INTO alembic_version (version_num) OUTPUT inserted.version_num VALUES ('0001');

GO


ALTER TABLE credentials ADD epoch INTEGER NOT NULL DEFAULT '0';

GO

ALTER TABLE credentials ADD activation_address VARCHAR(320) NULL;

GO

ALTER TABLE credentials ADD seal VARCHAR(64) NULL;

GO

ALTER TABLE sads ADD spent TEXT NOT NULL DEFAULT '';

GO

ALTER TABLE otp_challenges ADD purpose VARCHAR(16) NOT NULL DEFAULT 'authorize';

GO

ALTER TABLE otp_challenges ADD binding TEXT NULL;

GO

ALTER TABLE audit_records ADD mac VARCHAR(64) NULL;

GO

CREATE TABLE login_throttle (
    [key] VARCHAR(300) NOT NULL, 
    failures INTEGER NOT NULL, 
    window_start DATETIMEOFFSET NOT NULL, 
    blocked_until DATETIMEOFFSET NULL, 
    CONSTRAINT pk_login_throttle PRIMARY KEY ([key])
);

GO

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

GO


CREATE TABLE refresh_tokens (
    id INTEGER NOT NULL IDENTITY, 
    token_hash VARCHAR(64) NOT NULL, 
    family VARCHAR(32) NOT NULL, 
    user_id INTEGER NOT NULL, 
    access_token_hash VARCHAR(64) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    used BIT NOT NULL, 
    revoked BIT NOT NULL, 
    CONSTRAINT pk_refresh_tokens PRIMARY KEY (id), 
    CONSTRAINT fk_refresh_tokens_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_refresh_tokens_token_hash UNIQUE (token_hash)
);

GO

CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family);

GO

CREATE INDEX ix_refresh_tokens_user_id ON refresh_tokens (user_id);

GO

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

GO


CREATE TABLE event_cursors (
    sink VARCHAR(64) NOT NULL, 
    last_seq BIGINT NOT NULL, 
    last_hash VARCHAR(64) NOT NULL, 
    holder VARCHAR(128) NULL, 
    lease_until DATETIMEOFFSET NULL, 
    CONSTRAINT pk_event_cursors PRIMARY KEY (sink)
);

GO

UPDATE alembic_version SET version_num='0004' WHERE alembic_version.version_num = '0003';

GO


ALTER TABLE users ADD phone VARCHAR(16) NULL;

GO

UPDATE alembic_version SET version_num='0005' WHERE alembic_version.version_num = '0004';

GO


ALTER TABLE credentials ADD policy VARCHAR(32) NOT NULL DEFAULT 'basic';

GO

UPDATE alembic_version SET version_num='0006' WHERE alembic_version.version_num = '0005';

GO


CREATE TABLE client_certificates (
    id INTEGER NOT NULL IDENTITY, 
    user_id INTEGER NOT NULL, 
    fingerprint VARCHAR(64) NOT NULL, 
    label VARCHAR(128) NOT NULL, 
    subject VARCHAR(512) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_client_certificates PRIMARY KEY (id), 
    CONSTRAINT fk_client_certificates_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_client_certificates_fingerprint UNIQUE (fingerprint)
);

GO

CREATE INDEX ix_client_certificates_user_id ON client_certificates (user_id);

GO

UPDATE alembic_version SET version_num='0007' WHERE alembic_version.version_num = '0006';

GO


CREATE TABLE mobile_devices (
    id VARCHAR(32) NOT NULL, 
    credential_id VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    label VARCHAR(128) NOT NULL, 
    public_key TEXT NOT NULL, 
    attestation TEXT NULL, 
    status VARCHAR(16) NOT NULL, 
    seal VARCHAR(64) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_mobile_devices PRIMARY KEY (id), 
    CONSTRAINT fk_mobile_devices_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id), 
    CONSTRAINT fk_mobile_devices_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

GO

CREATE INDEX ix_mobile_devices_credential_id ON mobile_devices (credential_id);

GO

CREATE TABLE mobile_requests (
    id VARCHAR(32) NOT NULL, 
    credential_id VARCHAR(64) NOT NULL, 
    user_id INTEGER NOT NULL, 
    device_id VARCHAR(32) NOT NULL, 
    hash_algorithm VARCHAR(64) NULL, 
    hashes TEXT NOT NULL, 
    num_signatures INTEGER NOT NULL, 
    labels TEXT NOT NULL, 
    description VARCHAR(512) NULL, 
    origin VARCHAR(320) NOT NULL, 
    nonce VARCHAR(64) NOT NULL, 
    assurance TEXT NOT NULL, 
    content_mac VARCHAR(64) NOT NULL, 
    state VARCHAR(16) NOT NULL, 
    approval TEXT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    decided_at DATETIMEOFFSET NULL, 
    CONSTRAINT pk_mobile_requests PRIMARY KEY (id), 
    CONSTRAINT fk_mobile_requests_credential_id_credentials FOREIGN KEY(credential_id) REFERENCES credentials (id), 
    CONSTRAINT fk_mobile_requests_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

GO

CREATE INDEX ix_mobile_requests_credential_id ON mobile_requests (credential_id);

GO

CREATE INDEX ix_mobile_requests_device_id ON mobile_requests (device_id);

GO

CREATE INDEX ix_mobile_requests_state ON mobile_requests (state);

GO

UPDATE alembic_version SET version_num='0008' WHERE alembic_version.version_num = '0007';

GO


CREATE TABLE oauth2_clients (
    id INTEGER NOT NULL IDENTITY, 
    client_id VARCHAR(64) NOT NULL, 
    name VARCHAR(128) NOT NULL, 
    secret_hash VARCHAR(256) NULL, 
    redirect_uris TEXT NOT NULL, 
    seal VARCHAR(64) NOT NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_oauth2_clients PRIMARY KEY (id), 
    CONSTRAINT uq_oauth2_clients_client_id UNIQUE (client_id)
);

GO

CREATE TABLE oauth2_codes (
    id INTEGER NOT NULL IDENTITY, 
    code_hash VARCHAR(64) NOT NULL, 
    client_id VARCHAR(64) NOT NULL, 
    user_id INTEGER NULL, 
    used BIT NOT NULL, 
    [grant] TEXT NULL, 
    access_token_hash VARCHAR(64) NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_oauth2_codes PRIMARY KEY (id), 
    CONSTRAINT fk_oauth2_codes_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_oauth2_codes_code_hash UNIQUE (code_hash)
);

GO

CREATE INDEX ix_oauth2_codes_expires_at ON oauth2_codes (expires_at);

GO

CREATE INDEX ix_oauth2_codes_user_id ON oauth2_codes (user_id);

GO

UPDATE alembic_version SET version_num='0009' WHERE alembic_version.version_num = '0008';

GO


CREATE TABLE federation_spent (
    digest VARCHAR(64) NOT NULL, 
    provider VARCHAR(32) NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_federation_spent PRIMARY KEY (digest)
);

GO

CREATE INDEX ix_federation_spent_expires_at ON federation_spent (expires_at);

GO

UPDATE alembic_version SET version_num='0010' WHERE alembic_version.version_num = '0009';

GO


CREATE TABLE mobile_push_subscriptions (
    device_id VARCHAR(32) NOT NULL, 
    endpoint TEXT NOT NULL, 
    p256dh VARCHAR(128) NOT NULL, 
    auth VARCHAR(64) NOT NULL, 
    updated_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_mobile_push_subscriptions PRIMARY KEY (device_id), 
    CONSTRAINT fk_mobile_push_subscriptions_device_id_mobile_devices FOREIGN KEY(device_id) REFERENCES mobile_devices (id)
);

GO

UPDATE alembic_version SET version_num='0011' WHERE alembic_version.version_num = '0010';

GO


ALTER TABLE mobile_devices ADD kind VARCHAR(16) NOT NULL DEFAULT 'mobile';

GO

ALTER TABLE mobile_devices ADD webauthn_id VARCHAR(1400) NULL;

GO

ALTER TABLE mobile_devices ADD sign_count INTEGER NOT NULL DEFAULT '0';

GO

UPDATE alembic_version SET version_num='0012' WHERE alembic_version.version_num = '0011';

GO


CREATE TABLE oauth2_device_codes (
    id INTEGER NOT NULL IDENTITY, 
    device_code_hash VARCHAR(64) NOT NULL, 
    user_code_hash VARCHAR(64) NOT NULL, 
    client_id VARCHAR(64) NOT NULL, 
    status VARCHAR(16) NOT NULL, 
    user_id INTEGER NULL, 
    approval TEXT NULL, 
    poll_interval INTEGER NOT NULL, 
    last_poll_at DATETIMEOFFSET NULL, 
    access_token_hash VARCHAR(64) NULL, 
    created_at DATETIMEOFFSET NOT NULL, 
    expires_at DATETIMEOFFSET NOT NULL, 
    CONSTRAINT pk_oauth2_device_codes PRIMARY KEY (id), 
    CONSTRAINT fk_oauth2_device_codes_user_id_users FOREIGN KEY(user_id) REFERENCES users (id), 
    CONSTRAINT uq_oauth2_device_codes_device_code_hash UNIQUE (device_code_hash), 
    CONSTRAINT uq_oauth2_device_codes_user_code_hash UNIQUE (user_code_hash)
);

GO

CREATE INDEX ix_oauth2_device_codes_expires_at ON oauth2_device_codes (expires_at);

GO

CREATE INDEX ix_oauth2_device_codes_user_id ON oauth2_device_codes (user_id);

GO

UPDATE alembic_version SET version_num='0013' WHERE alembic_version.version_num = '0012';

GO


CREATE INDEX ix_access_tokens_expires_at ON access_tokens (expires_at);

GO

CREATE INDEX ix_refresh_tokens_expires_at ON refresh_tokens (expires_at);

GO

CREATE INDEX ix_sads_expires_at ON sads (expires_at);

GO

CREATE INDEX ix_otp_challenges_expires_at ON otp_challenges (expires_at);

GO

CREATE INDEX ix_mobile_requests_expires_at ON mobile_requests (expires_at);

GO

UPDATE alembic_version SET version_num='0014' WHERE alembic_version.version_num = '0013';

GO


ALTER TABLE refresh_tokens ADD client_id VARCHAR(64) NULL;

GO

CREATE INDEX ix_refresh_tokens_access_token_hash ON refresh_tokens (access_token_hash);

GO

UPDATE alembic_version SET version_num='0015' WHERE alembic_version.version_num = '0014';

GO

COMMIT;

GO

