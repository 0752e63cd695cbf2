-- Exchange rates as operators set them: each pair's current version, and every version.
CREATE TABLE ops_fx_rates (
    pair TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE ops_fx_rate_versions (
    pair TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (pair, version)
);
