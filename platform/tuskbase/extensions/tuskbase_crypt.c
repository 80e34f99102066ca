/*
 * crypt() and gen_salt() of pgcrypto for the embedded Postgres, whose build has no OpenSSL: the hashing is
 * the system's libxcrypt (crypt_rn, crypt_gensalt_rn), which implements bcrypt ($2a$), md5crypt ($1$),
 * sha256crypt ($5$), sha512crypt ($6$) and BSDi DES (_). Built when the server starts if a C compiler and
 * crypt.h are there (tuskbase/extensions/__init__.py); without them pgcrypto's stand-in has neither function.
 */
#include "postgres.h"

#include <crypt.h>
#include <string.h>

#include "fmgr.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(tuskbase_crypt);
PG_FUNCTION_INFO_V1(tuskbase_gen_salt);

/* crypt(password, salt): the hash of password under the salt's algorithm, as pgcrypto answers it. */
Datum
tuskbase_crypt(PG_FUNCTION_ARGS)
{
    char *password = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *salt = text_to_cstring(PG_GETARG_TEXT_PP(1));
    struct crypt_data *data = palloc0(sizeof(struct crypt_data));
    char *hashed = crypt_rn(password, salt, data, sizeof(struct crypt_data));

    if (hashed == NULL || hashed[0] == '*')
        ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
                        errmsg("crypt(3) returned NULL")));
    PG_RETURN_TEXT_P(cstring_to_text(hashed));
}

/* gen_salt(type [, iter_count]): a new random salt of pgcrypto's type names. */
Datum
tuskbase_gen_salt(PG_FUNCTION_ARGS)
{
    char *type = text_to_cstring(PG_GETARG_TEXT_PP(0));
    int rounds = PG_NARGS() > 1 ? PG_GETARG_INT32(1) : 0;
    const char *prefix;
    int low, high, fallback;
    char output[CRYPT_GENSALT_OUTPUT_SIZE];

    if (pg_strcasecmp(type, "bf") == 0)
        prefix = "$2a$", low = 4, high = 31, fallback = 6;
    else if (pg_strcasecmp(type, "md5") == 0)
        prefix = "$1$", low = 0, high = 0, fallback = 0;
    else if (pg_strcasecmp(type, "xdes") == 0)
        prefix = "_", low = 1, high = 16777215, fallback = 725;
    else if (pg_strcasecmp(type, "sha256crypt") == 0)
        prefix = "$5$", low = 1000, high = 999999999, fallback = 5000;
    else if (pg_strcasecmp(type, "sha512crypt") == 0)
        prefix = "$6$", low = 1000, high = 999999999, fallback = 5000;
    else
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("gen_salt: Unknown salt algorithm")));
    if (PG_NARGS() < 2)
        rounds = fallback;
    else if (rounds < low || rounds > high || (low == 0 && rounds != 0))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("gen_salt: Incorrect number of rounds")));
    if (crypt_gensalt_rn(prefix, (unsigned long) rounds, NULL, 0, output, sizeof(output)) == NULL)
        ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
                        errmsg("gen_salt: could not make a salt")));
    PG_RETURN_TEXT_P(cstring_to_text(output));
}
