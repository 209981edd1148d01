from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "application" ADD "pending_quotes" SMALLINT NOT NULL DEFAULT 0;
        UPDATE "application" a SET "pending_quotes" = (
            SELECT count(*) FROM "quote" q WHERE q."application_id" = a."id" AND q."status" = 'pending'
        );"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "application" DROP COLUMN "pending_quotes";"""


MODELS_STATE = (
    "eJztXG1zmzgQ/isMX64308skdhLncjc34xfS89Wxc47T6zTtMArINheQKIg0nl7/+0kY8y"
    "IEgdhObcqXxF5pBTwrLbvPSv4qW1iHpnvQtm3T0AAxMJLPpa8yAhakH0TNryUZ2HbUyAQE"
    "3Jl+f8B1vHOJAzRCm6bAdCEV6dDVHMMOroQ802RCrNGOBppFIg8Znz2oEjyDZA4d2nB7K2"
    "umARFRXQ3bkI1v6NCyMYFIW6j3cCF/+sSESIeP0F1quAQQz79HHQLdNBCUaZ9b2QYOQdBR"
    "DZ21aQ4EBOoqIMsh7Ht1akBTT2Cx7OrLVbKwfdnNTb934fdkV7hTNWx6Fop62wsyxyjs7n"
    "mGfsB0WNsM0htgl42hwx4+wHIlWgJBBcTxYPh4eiTQ4RR4JsNY/n3qIY1BK/lXYn+O/whu"
    "LdZNVYejiXqtTFRVLmESDSNmTgMRBu7Xb8txI0B8qcwu0P2zPX7VPP3ZhwC7ZOb4jT5c8j"
    "dfERCwVPUNFaEcGSyJdHcOHAV5lo92n94IQBpMoR5pc8jTG38O5itBBHo0j0M4bYh0BlQ5"
    "nOUrZdjrD9+cS4H+R9QdXV4NlIlyLmnYsk1Ilg/4pCVkCzyqJkQzMqdfj05zLPOuPfaNc7"
    "Q0Dqarc7lyh0FLw29iNopswi+7tGXEa4DXezmbrCbxFqZ9EuyzwwJgnx1mgs2akmDzPq0E"
    "3gLVZ0EeOJbdRLxxclIActorE3O/LQm6A+mTuoQOiWbQsentkDLAZ6hXcL6fHhcA//Q4E3"
    "vWlITeBgsTA8G79a/r0VAMd0yFg1g3NCL9J5mGS/YQ6hxoGRhsZMt1P5txSF9dtt/zaHcH"
    "ow7/6mUDdDjoHwxUZpYH3bfkUlLRzIvN6aNWkRdmK/uF2UrNaROQUm/KUKF64DaKgNvIBr"
    "eR9tUzekcUPL0UxJxaBX1zswDSzUygmzzOYcKUArlHESKGBcVAx/V49xwoHqw+7CHmOSBP"
    "+pfK9aR9eZXw1L32RGEtDV+64KSv+EA8HET6pz/5U2JfpQ+jocI79LDf5IPM7gl4BKsIf1"
    "GBHsdkJV6JkoF9lPeWNHJSs4Jmpv4C6CNkLgLvuSdmDxx9vtWD5PJZdud0N2D5Hcs29sTQ"
    "xdZ3YC0VPrBE3PbuaGQ8h4Jgu4OxCQHKN7poGG4C3NFxtrXaQ8nLWr0zGg0SBu/0J9xL9O"
    "ayo9Aoxrc07WQQX9wfTvi4cMn0qJ89mqULSK5rC5hmH5GMIDGlzYEfpJ3bwP5wW252xu7g"
    "l2ajdXpGW/0bZF/yQvLry/ZgIAA3QekW5WmTWmvwtfvjxp5gZxkBPr0XkrMBWGl8L7ADjR"
    "l6CxcpfpaDNKgoXEUj7SWukTS6RQd8CcsG3LyiANDHhku/MKZ+fdzv0vnLoL4D2v0X4Ohq"
    "BuZ4OoWOwFd0Ar2Lt2NohhUXMdojNsYeBmFZYCfWfZYzLQPQ32yMKgHEZhZu4NiMSsy1dJ"
    "PVsHgJQGDmPxK7NrtSYjYJyoThNMsuEOKwy4ZLg1zl0UCu59Dl56f7fFmwLvF91xJfwjYp"
    "vHPKG5xeFSmcImxZM5sta6bYMtuBluFZ6j22oXYvcpPGLDviTCu/XMi5TdCXUeevjUaz2W"
    "ocNk/PTo5brZOzwzAGTTflRaSd/hsWjyaMkg5QNQynU0NjNVGBHbLLHbxeXfNYo+axciIO"
    "pC8iGMSoZT1QQrmCbujosEhZm/bKpu0PU4XtB2AauuohYphlWSdOtYJ0Y6VYp5pV/gFZ5V"
    "gAXpKCSWtuMqbe3YX9ZAjN5bglYY3rvGySspNw5tBaXO64JrXFbZbdz/n6JL+VXrQJjqvb"
    "vu62e0oexZWmKLj5nrbFCMEJpn8KWuLZrM4uTPEnLRBf3wWwX4vyWdG1AtInxuRm0z4x4n"
    "izxE/N7OwSs+P/T+GcnU+t+tcpVLEUCtgG29irzoE7L4Mzr7cZvL+rl9z2ttRgS6+r2jTf"
    "dyG9usCDXJgYZFBnGfoc8lM2wB7O9Ry0e6ObzkCRrsZKt3/dDxicMFHxG5koKpOPlfaAn+"
    "fUDz4IPEnuLoVI6QX3JKym/N5uSaiT9WwXU61kPZUAFak+x8L8NUus5dKiPan6b7XOukxf"
    "BCF3mNdkB9xhAvVkuM2SKikgtn9yJZcGEVDCUwlTccz6v0kGoa3++TrJcKWpgYApwUc6tL"
    "mgnTV4IHNQbnbktau+t/K/+C65eS1+7pOdChVuk0P+5/ps6IbeXXXheD8KxyvQyuZ0vF4F"
    "wd5KbvcjH3weXVwoY6V3Lvnbg6D+EfWU7qA/ZCIdauw0CZVdtPsDJpkCw2Tfb4btd1TUph"
    "nFueQh8EDl7Hk+IhYh9dTRzYQ6Qhp70vewR/i3UyFDb/woNX3huCKWeQIfMxPJlUYVzvLm"
    "xdDK+0kifE6V+8MQejAavll15/cAcJkkIdCyRfstMje9xFUqs8G6cXTcOj5rnh6HO1xCSd"
    "7GlnS+aAKXqNBxsGAXcPYkTmrVE7n8RE7FriWYkZRufWijBEOy3tmZ+sjMeujX/FS2a68W"
    "PxW3ejzrLml2TrU+oLjLW8XqTUP1Lpdd4nNfv8AulxyCmDv1lU24rzbCbO7o1246OTHhXo"
    "JDb0PH0Oay6DcNly2vc3/OMOqzM7tWMvNWoRcUZKyBpXe3sr+RjDWbRX6Ajiv0gTm/fBSp"
    "VJDO3MovqrFFVQLhoHsF0d0KWUyvSKDoN+ryThGFKvUBopIHiEqUzjdfEP72P1l6O98="
)
