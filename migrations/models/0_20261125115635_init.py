from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE IF NOT EXISTS "partner" (
    "id" UUID NOT NULL PRIMARY KEY,
    "name" VARCHAR(100) NOT NULL,
    "api_key_hash" VARCHAR(64) NOT NULL UNIQUE,
    "requests_per_second" DOUBLE PRECISION NOT NULL,
    "active" BOOL NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS "application" (
    "id" UUID NOT NULL PRIMARY KEY,
    "status" VARCHAR(16) NOT NULL,
    "client_scope" VARCHAR(80) NOT NULL,
    "idempotency_key" VARCHAR(255),
    "request_fingerprint" VARCHAR(64) NOT NULL,
    "payload" JSONB NOT NULL,
    "vin" VARCHAR(17),
    "plate" VARCHAR(12),
    "region_code" VARCHAR(3) NOT NULL,
    "deadline" TIMESTAMPTZ NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "completed_at" TIMESTAMPTZ,
    "complete_event_published" BOOL NOT NULL,
    "partner_id" UUID REFERENCES "partner" ("id") ON DELETE RESTRICT,
    CONSTRAINT "uid_application_client__037020" UNIQUE ("client_scope", "idempotency_key")
);
CREATE INDEX IF NOT EXISTS "idx_application_vin_c94257" ON "application" ("vin");
CREATE INDEX IF NOT EXISTS "idx_application_plate_2c56b8" ON "application" ("plate");
CREATE INDEX IF NOT EXISTS "idx_application_status_23e82e" ON "application" ("status", "deadline");
CREATE INDEX IF NOT EXISTS "idx_application_partner_2f0288" ON "application" ("partner_id", "created_at");
COMMENT ON COLUMN "application"."status" IS 'PENDING: pending\nCOMPLETE: complete';
CREATE TABLE IF NOT EXISTS "quote" (
    "id" UUID NOT NULL PRIMARY KEY,
    "insurer_code" VARCHAR(32) NOT NULL,
    "insurer_name" VARCHAR(100) NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "reason" TEXT,
    "attempts" INT NOT NULL,
    "last_error" TEXT,
    "job_published" BOOL NOT NULL,
    "event_published" BOOL NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "application_id" UUID NOT NULL REFERENCES "application" ("id") ON DELETE CASCADE,
    CONSTRAINT "uid_quote_applica_be3a90" UNIQUE ("application_id", "insurer_code")
);
CREATE INDEX IF NOT EXISTS "idx_quote_job_pub_dd90fa" ON "quote" ("job_published", "created_at");
CREATE INDEX IF NOT EXISTS "idx_quote_event_p_d1d277" ON "quote" ("event_published", "finished_at");
COMMENT ON COLUMN "quote"."status" IS 'PENDING: pending\nOFFERED: offered\nDECLINED: declined\nFAILED: failed\nUNAVAILABLE: unavailable\nTIMED_OUT: timed_out';
COMMENT ON TABLE "quote" IS 'One insurer''s share of one application; its status is final exactly once.';
CREATE TABLE IF NOT EXISTS "offer" (
    "id" UUID NOT NULL PRIMARY KEY,
    "insurer_code" VARCHAR(32) NOT NULL,
    "premium_kopecks" BIGINT NOT NULL,
    "coefficients" JSONB NOT NULL,
    "insurer_reference" VARCHAR(100) NOT NULL,
    "valid_until" TIMESTAMPTZ NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "application_id" UUID NOT NULL REFERENCES "application" ("id") ON DELETE CASCADE,
    "quote_id" UUID NOT NULL UNIQUE REFERENCES "quote" ("id") ON DELETE CASCADE,
    CONSTRAINT "uid_offer_applica_e63cd4" UNIQUE ("application_id", "insurer_code")
);
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        """


MODELS_STATE = (
    "eJztXG1v2zYQ/iuCvqwDusCxkzjLhgF+UTqvjp05Tlc0LQRGom0uMqlKVBqj638fKct6oV"
    "4ixS+1VX1J7COPkp47nnjPkf4qz4kODfuoZZoG0gBFBMsX0lcZgzlkH5KaX0syMM2gkQso"
    "uDfc/kDoeG9TC2iUNU2AYUMm0qGtWcj0roQdw+BCorGOCE8DkYPRZweqlEwhnUGLNdzdyZ"
    "qBIKaqrRET8vGRDucmoRBrC/UBLuRPn7gQ6/AJ2ksNmwLquPeoQ6AbCEOZ9bmTTWBRDC0V"
    "6bxNsyCgUFcBXQ5hPqgTBA09gsWyqytX6cJ0Zbe3ve6l25Nf4V7ViOHMcdDbXNAZwX53x0"
    "H6EdfhbVPIboBfNoQOf3gPy5VoCQQTUMuB/uPpgUCHE+AYHGP594mDNQ6t5F6J/zn5w7u1"
    "UDdVHQzH6o0yVlW5gEk0grk5EaYc3K/fluMGgLhSmV+g82dr9Kpx9rMLAbHp1HIbXbjkb6"
    "4ioGCp6hoqQDkwWBTpzgxYCnbmLto9diMAazCGeqAtIM9u/CWYrwQB6IEf+3CaEOscqGI4"
    "y9fKoNsbvLmQPP2PuDO8uu4rY+VC0sjcNCBdPuCzlpDn4Ek1IJ7SGft6fJZhmXetkWuc46"
    "VxCJudy5k78FrqbhO3UWATcdrFLZM8B0S93dlk5cRbcPso2Oe1HGCf11LB5k1RsMWYVgDv"
    "BNUXQe4Flv1EvH56mgNy1isVc7ctCroF2ZPalA2Jp9Ay2e3QIsCnqJfQ389OcoB/dpKKPW"
    "+KQm+ChUFAwrv1r5vhIBnukIoAsY40Kv0nGcimBwh1BrQcDD7y3LY/G2FIX1213otod/rD"
    "tvjq5QO0BegfES7i5V73LYWU2GpmZz593MzzwmymvzCbMZ82AC30pvQVygduPQ+49XRw6/"
    "FYPWV3xMDTC0EsqJUwNjdyIN1IBboh4uwnTDGQuwwhiuYwGeiwnhiePcWj1YcDxDwD5HHv"
    "SrkZt66uI5G62xorvKXuSheC9JW4EPcHkf7pjf+U+Ffpw3CgiAHd7zf+IPN7Ag4lKiZfVK"
    "CHMVmJV6Lowj7IewsaOapZQjOzeAH0ITYWXvQ8ELN7gT7b6l5y+SK7C7obsPyeZRsHYuh8"
    "89uzlgofeSJuOvdsZTyDCYvtNiEGBDjb6EnDCA5wz8bZ1mz3Jbu1ens47EcM3u6NhZfo7V"
    "VbYasY19KsE6KuuDcYx3KdMOuYl0qMaq1BKR7OTHuGQOQc7eQhkT/0wIrje0ksiKb4LVzE"
    "KEQBUo/0vg5GOkhcA2lwixb44jPbgl8xANhjw6XrjljoGfU6zH851PdAe/gCLF1NwZxMJt"
    "BK4Gzbnt7l2xE0/KJAMtpDPsYBrhPSwI7M+88OoXBNgP7mY5QJIO5ZpE5CHhXxtXjTvD4X"
    "JQCDqftI/Nr8ShFvSqhk+W6WXsMifpcNV6+E4hjCtmOx6edmpGLlqqpCfdcqVMQ2MbwzGH"
    "hBr4wsQx5Cp5FO6DRihI5pwTly5uoDMaH2kBQm0bSHacriKK4sgO6R8YcG+pTfxC+/1uuN"
    "RrNea5ydn540m6fntXPW173jeFMWj9nuveHr0YhR4gtUjcDJBGm8bJdgh3RGXtSraPk1aP"
    "lVELEgexFBb41aNAJFlEsYho5reSqvrFc6s1yL1V4fgYF01cEUGUWJEUG1hIxYqYiRivj8"
    "AYnP0AK8IAUT19zkmnp/J/azS2ghxy0Ia1hnt0nKXsKZQWsJueOa1Jawn/Mw/fVZfis+aS"
    "McV6d102l1lSyKK05RCP4et8UQwzFhf3Ja4sWszj64+LMWCM/vHNivRfms6NoE0ifE5KbT"
    "PiHieLPET8Xs7BOz4/6P4ZyeT636VylUvhQKmIjvPVVnwJ4VwVnU2wze3zVKbnvnpLfr1F"
    "ZNlu/bkF09IYJcGgSkUGcp+gLyEz7AAfp6Btrd4W27r0jXI6XTu+l5DI6fqLiN0UruSGn1"
    "RT9ncfAxIZJkFtIDpR2WzVcuf7BV8ypZTw8x5UrWYwlQnupzaJm/Zom1WFp0IFX/rdZZl+"
    "lLwpLbz2vSF9x+AvXscpsnVZJHbP9kSzZbRECJTCTCxCHr/yYhylrdI2ASsqUJwsCQ4BMb"
    "2liwzho8kgUoNzvy2lXfO/lfch/dXxU+msgPLibu5MLu5+r44obeXVXh+DAKxyvQiuZ0ol"
    "4Jwd5Kbvcjn80dXl4qI6V7Ibnbg6D+EXeVTr834CIdavzAA5Ndtnp9LpkAZPDvt4PWOyZq"
    "sYziQnIweGRy/jwfMV8hddXh7ZgFQrb2ZO9hh4pvp1yG3vhpX/bCsZNY5jF8Sk0kVxplOG"
    "6atYZW3o8jy+dYud9fQveHgzer7uIeACGTpBTOzaT9FqmbXsIqu9vtUttW5FpudakfnzRP"
    "zhtnJ/4OF1+StbElni8awKYqtCySsAs43YmjWpUjF3fk2Nq1ADMS063OFRRgSNY73lGd6l"
    "gP/YqfSg/t5eKnwlYPZ90FzS6oVmfo9nmrWLVpqNrlsk987usd7HLJIIiFU1/phPtqI8zm"
    "jn7tZ5BLJtwLcOgtaCFtJif97N6y5XXmL+4FffZm10pq3poYBRMyVs/S+1vZ30jGms4iP0"
    "LLToyBGT/OE6iUkM7cyo9+8UlVAGGvewnR3QpZzK5IYdLPqGWdIvJVqgNEBQ8QFSidb74g"
    "/O1/vCnL7w=="
)
