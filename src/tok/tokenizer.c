/* tokenizer.c: loading tokenizer.json / tokenizer_config.json / chat_template.jinja into an
 * immutable Tokenizer, the accessors, and the encode / decode pipelines:
 *
 *   encode: raw text -> split on non-normalized added tokens -> normalize each gap -> split on
 *           normalized added tokens -> Split regex pieces -> byte-level BPE -> post-processor
 *   decode: ids -> (skip special) -> byte-level bytes -> UTF-8 with U+FFFD for invalid bytes
 *
 * Only byte-level BPE tokenizers (GPT-2 / Qwen2 / Qwen3 / Llama-3 style) are accepted; any other
 * model, normalizer, pre-tokenizer or decoder is refused at load with a message naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "tok/tok_internal.h"
#include "tok/tok_json.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"

#define GPT2_SPLIT_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) -------------------------------------- */

static uint32_t g_byte2cp[256];
static int16_t g_cp2byte[512];
static pthread_once_t g_bytelevel_once = PTHREAD_ONCE_INIT;

static void bytelevel_init(void) {
    int n = 0;
    for (int i = 0; i < 512; i++) g_cp2byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        g_byte2cp[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
        g_cp2byte[g_byte2cp[b]] = (int16_t)b;
    }
}

static size_t utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* HF ByteLevel decoder on one token: if every character is in the byte alphabet, the bytes
 * they stand for; otherwise the token's own UTF-8 bytes. Writes at most len bytes to out. */
static size_t bytelevel_decode(const char *s, size_t len, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n;
        if (u[i] < 0x80) cp = u[i], n = 1;
        else if ((u[i] & 0xE0) == 0xC0 && i + 1 < len) cp = ((u[i] & 0x1Fu) << 6) | (u[i + 1] & 0x3Fu), n = 2;
        else cp = 0xFFFFFFFF, n = 1;
        if (cp >= 512 || g_cp2byte[cp] < 0) {
            memcpy(out, s, len);
            return len;
        }
        out[o++] = (char)g_cp2byte[cp];
        i += n;
    }
    return o;
}

/* ---- helpers for reading JSON --------------------------------------------------------- */

static int json_flag(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const char *json_type_of(json_t *o) {
    json_t *v = json_object_get(o, "type");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A special token in tokenizer_config.json: "text", {"content": "text", ...} or null. */
static char *config_token(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* ---- loading stages ------------------------------------------------------------------- */

static int load_normalizer(Tokenizer *t, json_t *n, const char *path, char *err) {
    if (!n || json_is_null(n)) return 0;
    const char *type = json_type_of(n);
    if (!type) return pg_err(err, "%s: normalizer has no \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return pg_err(err, "%s: normalizer Sequence lacks \"normalizers\"", path);
        size_t i;
        json_t *it;
        json_array_foreach(list, i, it) if (load_normalizer(t, it, path, err) != 0) return -1;
        return 0;
    }
    NormKind k;
    if (!strcmp(type, "NFC")) k = NORM_NFC;
    else if (!strcmp(type, "NFD")) k = NORM_NFD;
    else if (!strcmp(type, "NFKC")) k = NORM_NFKC;
    else if (!strcmp(type, "NFKD")) k = NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) k = NORM_LOWERCASE;
    else return pg_err(err, "%s: unsupported normalizer type \"%s\"", path, type);
    if (t->n_norm >= (int)(sizeof t->norm / sizeof t->norm[0]))
        return pg_err(err, "%s: too many normalizers", path);
    t->norm[t->n_norm++] = k;
    return 0;
}

static int add_split(Tokenizer *t, const char *pattern, int literal, const char *path, char *err) {
    if (t->n_split >= (int)(sizeof t->split / sizeof t->split[0]))
        return pg_err(err, "%s: too many Split pre-tokenizers", path);
    char e[PG_ERR_LEN];
    if (tok_split_compile(&t->split[t->n_split], pattern, literal, e) != 0)
        return pg_err(err, "%s: %s", path, e);
    t->n_split++;
    return 0;
}

static int load_pretokenizer(Tokenizer *t, json_t *p, const char *path, int *byte_level, char *err) {
    if (!p || json_is_null(p)) return 0;
    const char *type = json_type_of(p);
    if (!type) return pg_err(err, "%s: pre_tokenizer has no \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list)) return pg_err(err, "%s: pre_tokenizer Sequence lacks \"pretokenizers\"", path);
        size_t i;
        json_t *it;
        json_array_foreach(list, i, it) if (load_pretokenizer(t, it, path, byte_level, err) != 0) return -1;
        return 0;
    }
    if (*byte_level) return pg_err(err, "%s: pre_tokenizer %s after ByteLevel is unsupported", path, type);
    if (!strcmp(type, "Split")) {
        json_t *pat = json_object_get(p, "pattern");
        json_t *re = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
        json_t *beh = json_object_get(p, "behavior");
        if (!json_is_string(re) && !json_is_string(lit))
            return pg_err(err, "%s: pre_tokenizer Split: pattern must be {\"Regex\": ...} or {\"String\": ...}", path);
        if (!json_is_string(beh) || strcmp(json_string_value(beh), "Isolated") != 0)
            return pg_err(err, "%s: pre_tokenizer Split: behavior \"%s\" unsupported (only Isolated)", path,
                          json_is_string(beh) ? json_string_value(beh) : "?");
        if (json_flag(p, "invert", 0)) return pg_err(err, "%s: pre_tokenizer Split: invert=true unsupported", path);
        return add_split(t, json_string_value(re ? re : lit), re == NULL, path, err);
    }
    if (!strcmp(type, "ByteLevel")) {
        if (json_flag(p, "add_prefix_space", 0))
            return pg_err(err, "%s: pre_tokenizer ByteLevel: add_prefix_space=true unsupported", path);
        if (json_flag(p, "use_regex", 1) && add_split(t, GPT2_SPLIT_REGEX, 0, path, err) != 0) return -1;
        *byte_level = 1;
        return 0;
    }
    return pg_err(err, "%s: unsupported pre_tokenizer type \"%s\"", path, type);
}

static int special_ids(Tokenizer *t, json_t *specials, const char *name, IdVec *out, const char *path, char *err) {
    json_t *st = json_object_get(specials, name);
    json_t *ids = json_object_get(st, "ids");
    if (!json_is_array(ids)) {
        int32_t id = tok_token_id(t, name);
        if (id < 0) return pg_err(err, "%s: post_processor: special token \"%s\" unknown", path, name);
        return idvec_push(out, id);
    }
    size_t i;
    json_t *it;
    json_array_foreach(ids, i, it) if (idvec_push(out, (int32_t)json_integer_value(it)) != 0) return -1;
    return 0;
}

static int load_postprocessor(Tokenizer *t, json_t *p, const char *path, char *err) {
    if (!p || json_is_null(p)) return 0;
    const char *type = json_type_of(p);
    if (!type) return pg_err(err, "%s: post_processor has no \"type\"", path);
    if (!strcmp(type, "ByteLevel")) return 0; /* offsets only */
    if (!strcmp(type, "Sequence")) {
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(p, "processors"), i, it)
            if (load_postprocessor(t, it, path, err) != 0) return -1;
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return pg_err(err, "%s: unsupported post_processor type \"%s\"", path, type);
    json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
    if (!json_is_array(single)) return pg_err(err, "%s: post_processor TemplateProcessing lacks \"single\"", path);
    IdVec pre = {0}, post = {0};
    int seen_seq = 0;
    size_t i;
    json_t *it;
    json_array_foreach(single, i, it) {
        json_t *sp = json_object_get(it, "SpecialToken");
        if (json_object_get(it, "Sequence")) {
            seen_seq = 1;
        } else if (json_is_object(sp) && json_is_string(json_object_get(sp, "id"))) {
            if (special_ids(t, specials, json_string_value(json_object_get(sp, "id")), seen_seq ? &post : &pre,
                            path, err) != 0) goto fail;
        } else {
            pg_err(err, "%s: post_processor single[%zu] unrecognised", path, i);
            goto fail;
        }
    }
    free(t->post.prefix);
    free(t->post.suffix);
    t->post = (PostTemplate){pre.v, pre.n, post.v, post.n};
    t->has_post = 1;
    return 0;
fail:
    free(pre.v);
    free(post.v);
    return -1;
}

/* The ids HF gives added tokens on load (AddedVocabulary::add_tokens), which is not always the
 * "id" written in tokenizer.json: a token whose content is already in the vocab (or already
 * added) takes that id; any other takes the next id after the vocab / the added ones.
 * Needs t->vocab. */
static int assign_added_ids(Tokenizer *t, size_t vocab_n, json_t *added, int32_t *ids, const char *path, char *err) {
    int64_t max_added = -1;
    size_t i;
    json_t *it;
    json_array_foreach(added, i, it) {
        json_t *c = json_object_get(it, "content");
        if (!json_is_string(c) || json_string_length(c) == 0)
            return pg_err(err, "%s: added_tokens[%zu].content must be a non-empty string", path, i);
        int64_t id = -1;
        for (size_t k = 0; k < i; k++) {
            json_t *ck = json_object_get(json_array_get(added, k), "content");
            if (json_string_length(ck) == json_string_length(c) &&
                memcmp(json_string_value(ck), json_string_value(c), json_string_length(c)) == 0) {
                id = ids[k];
                break;
            }
        }
        if (id < 0) id = strmap_get(&t->vocab, json_string_value(c), json_string_length(c));
        if (id < 0) id = max_added >= (int64_t)vocab_n ? max_added + 1 : (int64_t)vocab_n;
        if (id > max_added) max_added = id;
        json_t *jid = json_object_get(it, "id");
        if (json_is_integer(jid) && json_integer_value(jid) != id)
            LOG_W("%s: added token \"%s\" is written with id %lld but gets id %lld (as HF assigns it)", path,
                  json_string_value(c), (long long)json_integer_value(jid), (long long)id);
        if (id > 16000000) return pg_err(err, "%s: added_tokens[%zu]: id out of range", path, i);
        ids[i] = (int32_t)id;
    }
    return 0;
}

static int check_model(Tokenizer *t, json_t *model, const char *path, char *err) {
    const char *type = json_type_of(model);
    if (type && strcmp(type, "BPE") != 0) return pg_err(err, "%s: model.type \"%s\" unsupported (only BPE)", path, type);
    if (json_flag(model, "byte_fallback", 0)) return pg_err(err, "%s: model.byte_fallback=true unsupported", path);
    json_t *drop = json_object_get(model, "dropout");
    if (json_is_number(drop) && json_number_value(drop) > 0)
        return pg_err(err, "%s: model.dropout unsupported", path);
    const char *keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(model, keys[k]);
        if (json_is_string(v) && json_string_length(v) > 0)
            return pg_err(err, "%s: model.%s unsupported", path, keys[k]);
    }
    t->ignore_merges = json_flag(model, "ignore_merges", 0);
    return 0;
}

/* Vocab (entries decoded into t->arena), added-token ids, per-id tables, byte ids, merges. */
static int load_vocab_and_merges(Tokenizer *t, const TokVocabEntry *ve, size_t nv, const TokMerge *mg, size_t nm,
                                 json_t *added, int32_t *added_ids, const char *path, char *err) {
    if (strmap_init(&t->vocab, nv) != 0) return pg_err(err, "%s: out of memory", path);
    int64_t max_id = -1;
    size_t bytes_size = 0;
    for (size_t i = 0; i < nv; i++) {
        /* A key written twice keeps the last id, as a JSON object read by serde does. */
        if (strmap_put(&t->vocab, ve[i].key, ve[i].len, ve[i].id, 1) != 0) return pg_err(err, "%s: out of memory", path);
        if (ve[i].id > max_id) max_id = ve[i].id;
        bytes_size += ve[i].len + 1;
    }
    if (assign_added_ids(t, t->vocab.n, added, added_ids, path, err) != 0) return -1;
    for (size_t i = 0; i < json_array_size(added); i++)
        if (added_ids[i] > max_id) max_id = added_ids[i];
    t->n_ids = (int32_t)(max_id + 1);
    size_t n = (size_t)t->n_ids;
    t->piece = calloc(n + 1, sizeof *t->piece);
    t->bytes = calloc(n + 1, sizeof *t->bytes);
    t->bytes_len = calloc(n + 1, sizeof *t->bytes_len);
    t->special = calloc(n + 1, 1);
    t->added = calloc(n + 1, 1);
    t->bytes_arena = malloc(bytes_size + 1);
    if (!t->piece || !t->bytes || !t->bytes_len || !t->special || !t->added || !t->bytes_arena)
        return pg_err(err, "%s: out of memory", path);
    if (t->ignore_merges && strmap_init(&t->vocab_bytes, nv) != 0) return pg_err(err, "%s: out of memory", path);
    char *a = t->bytes_arena;
    for (size_t i = 0; i < nv; i++) {
        int32_t id = ve[i].id;
        if (strmap_get(&t->vocab, ve[i].key, ve[i].len) != id) continue; /* overridden duplicate key */
        if (t->piece[id]) continue;                                        /* two keys, one id: keep the first */
        t->piece[id] = (char *)ve[i].key;
        size_t bl = bytelevel_decode(ve[i].key, ve[i].len, a);
        a[bl] = 0;
        t->bytes[id] = a;
        t->bytes_len[id] = (uint32_t)bl;
        a += bl + 1;
        if (t->ignore_merges && strmap_put(&t->vocab_bytes, t->bytes[id], bl, id, 1) != 0)
            return pg_err(err, "%s: out of memory", path);
    }
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t l = utf8_encode(g_byte2cp[b], s);
        t->byte_id[b] = strmap_get(&t->vocab, s, l);
    }

    if (tok_merges_init(t, nm) != 0) return pg_err(err, "%s: out of memory", path);
    char buf[1024];
    for (size_t i = 0; i < nm; i++) {
        const TokMerge *m = &mg[i];
        if (m->left_len + m->right_len >= sizeof buf) return pg_err(err, "%s: model.merges[%zu] too long", path, i);
        int32_t li = strmap_get(&t->vocab, m->left, m->left_len), ri = strmap_get(&t->vocab, m->right, m->right_len);
        memcpy(buf, m->left, m->left_len);
        memcpy(buf + m->left_len, m->right, m->right_len);
        int32_t mi = strmap_get(&t->vocab, buf, m->left_len + m->right_len);
        if (li < 0 || ri < 0 || mi < 0)
            return pg_err(err, "%s: model.merges[%zu] (\"%.*s\", \"%.*s\"): %s not in the vocab", path, i,
                          (int)m->left_len, m->left, (int)m->right_len, m->right,
                          li < 0 ? "left" : ri < 0 ? "right" : "merged token");
        if (tok_merges_put(t, li, ri, (int32_t)i, mi) != 0) return pg_err(err, "%s: merge table full", path);
    }
    return 0;
}

static int load_added_tokens(Tokenizer *t, json_t *added, const int32_t *added_ids, const char *path, char *err) {
    size_t n = json_array_size(added), i;
    json_t *it;
    t->added_tok = calloc(n + 1, sizeof *t->added_tok);
    if (!t->added_tok || strmap_init(&t->added_map, n + 1) != 0) return pg_err(err, "%s: out of memory", path);
    json_array_foreach(added, i, it) {
        json_t *c = json_object_get(it, "content");
        AddedToken *a = &t->added_tok[t->n_added++];
        a->len = json_string_length(c);
        a->content = malloc(a->len + 1);
        if (!a->content) return pg_err(err, "%s: out of memory", path);
        memcpy(a->content, json_string_value(c), a->len + 1);
        a->id = added_ids[i];
        a->special = (uint8_t)json_flag(it, "special", 0);
        a->lstrip = (uint8_t)json_flag(it, "lstrip", 0);
        a->rstrip = (uint8_t)json_flag(it, "rstrip", 0);
        a->single_word = (uint8_t)json_flag(it, "single_word", 0);
        a->normalized = (uint8_t)json_flag(it, "normalized", !a->special);
        a->norm = a->content;
        a->norm_len = a->len;
        if (a->normalized) {
            char *nrm;
            size_t nl;
            if (tok_normalize(t, a->content, a->len, &nrm, &nl) != 0)
                return pg_err(err, "%s: added_tokens[%zu]: cannot normalize", path, i);
            if (nrm) a->norm = nrm, a->norm_len = nl;
        }
        /* HF's id_to_token (and so decode) gives a normalized token's normalized content. */
        a->bytes = malloc(a->norm_len + 1);
        if (!a->bytes) return pg_err(err, "%s: out of memory", path);
        a->bytes_len = bytelevel_decode(a->norm, a->norm_len, a->bytes);
        a->bytes[a->bytes_len] = 0;
        t->piece[a->id] = a->norm;
        t->bytes[a->id] = a->bytes;
        t->bytes_len[a->id] = (uint32_t)a->bytes_len;
        t->special[a->id] = a->special;
        t->added[a->id] = 1;
        if (strmap_put(&t->added_map, a->content, a->len, a->id, 1) != 0) return pg_err(err, "%s: out of memory", path);
    }
    if (tok_matcher_build(&t->match_raw, t, 0) != 0 || tok_matcher_build(&t->match_norm, t, 1) != 0)
        return pg_err(err, "%s: out of memory", path);
    return 0;
}

static int add_template(Tokenizer *t, const char *name, const char *src) {
    ChatTemplate *ts = realloc(t->templates, (t->n_templates + 1) * sizeof *ts);
    if (!ts) return -1;
    t->templates = ts;
    ts[t->n_templates].name = strdup(name);
    ts[t->n_templates].source = strdup(src);
    t->n_templates++;
    return ts[t->n_templates - 1].name && ts[t->n_templates - 1].source ? 0 : -1;
}

static int load_config(Tokenizer *t, const char *dir, char *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        json_error_t je;
        json_t *cfg = json_load_file(path, JSON_ALLOW_NUL, &je);
        if (!cfg) return pg_err(err, "%s:%d: %s", path, je.line, je.text);
        if (!json_is_object(cfg)) { json_decref(cfg); return pg_err(err, "%s: not a JSON object", path); }
        t->bos_token = config_token(cfg, "bos_token");
        t->eos_token = config_token(cfg, "eos_token");
        t->pad_token = config_token(cfg, "pad_token");
        t->add_bos = json_flag(cfg, "add_bos_token", 0);
        json_t *ct = json_object_get(cfg, "chat_template");
        int rc = 0;
        if (json_is_string(ct)) {
            rc = add_template(t, "default", json_string_value(ct));
        } else if (json_is_array(ct)) {
            size_t i;
            json_t *it;
            json_array_foreach(ct, i, it) {
                json_t *nm = json_object_get(it, "name"), *tp = json_object_get(it, "template");
                if (!json_is_string(nm) || !json_is_string(tp)) {
                    json_decref(cfg);
                    return pg_err(err, "%s: chat_template[%zu] needs string \"name\" and \"template\"", path, i);
                }
                if ((rc = add_template(t, json_string_value(nm), json_string_value(tp))) != 0) break;
            }
        } else if (ct && !json_is_null(ct)) {
            json_decref(cfg);
            return pg_err(err, "%s: chat_template must be a string or a list of {name, template}", path);
        }
        json_decref(cfg);
        if (rc != 0) return pg_err(err, "%s: out of memory", path);
    }
    /* chat_template.jinja, where present, is the default template (as transformers loads it). */
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    size_t len;
    char *src = file_read_all(path, 0, &len, NULL);
    if (src) {
        int rc = 0;
        size_t i;
        for (i = 0; i < t->n_templates; i++)
            if (!strcmp(t->templates[i].name, "default")) break;
        if (i < t->n_templates) {
            free(t->templates[i].source);
            t->templates[i].source = src;
        } else {
            rc = add_template(t, "default", src);
            free(src);
        }
        if (rc != 0) return pg_err(err, "%s: out of memory", path);
    }
    t->bos_id = t->bos_token ? tok_token_id(t, t->bos_token) : -1;
    t->eos_id = t->eos_token ? tok_token_id(t, t->eos_token) : -1;
    t->pad_id = t->pad_token ? tok_token_id(t, t->pad_token) : -1;
    return 0;
}

int tok_load(Tokenizer **out, const char *dir, char *err) {
    *out = NULL;
    pthread_once(&g_bytelevel_once, bytelevel_init);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return pg_err(err, "out of memory");
    tok_cache_init(t);
    t->bos_id = t->eos_id = t->pad_id = -1;
    json_t *root = NULL;
    int32_t *added_ids = NULL;
    TokVocabEntry *ve = NULL;
    TokMerge *mg = NULL;
    char *merge_arena = NULL, *rest = NULL;
    size_t len, nv = 0, nm = 0;
    char *text = file_read_all(path, 0, &len, err);
    if (!text) goto fail;
    /* model.vocab and model.merges are read by tok_json.c; jansson gets the rest of the text
     * with those two values replaced by {} and []. */
    TokJsonSpan vs, ms;
    if (tokjson_find_model_spans(text, len, &vs, &ms) != 0) {
        json_error_t je;
        json_t *probe = json_loadb(text, len, 0, &je); /* for jansson's precise message */
        json_decref(probe);
        if (probe) pg_err(err, "%s: not a JSON object", path);
        else pg_err(err, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        goto fail;
    }
    rest = malloc(len + 8);
    if (!rest) {
        pg_err(err, "%s: out of memory", path);
        goto fail;
    }
    {
        /* Copy the text, replacing the (present) spans, in text order, by {} / []. */
        TokJsonSpan sp[2] = {vs, ms};
        const char *fill[2] = {"{}", "[]"};
        if (ms.begin < vs.begin) sp[0] = ms, sp[1] = vs, fill[0] = "[]", fill[1] = "{}";
        size_t o = 0, at = 0;
        for (int k = 0; k < 2; k++) {
            if (sp[k].begin == sp[k].end) continue;
            memcpy(rest + o, text + at, sp[k].begin - at), o += sp[k].begin - at;
            memcpy(rest + o, fill[k], 2), o += 2;
            at = sp[k].end;
        }
        memcpy(rest + o, text + at, len - at), o += len - at;
        json_error_t je;
        root = json_loadb(rest, o, JSON_ALLOW_NUL, &je);
        if (!root) {
            pg_err(err, "%s: %s (outside model.vocab / model.merges)", path, je.text);
            goto fail;
        }
    }
    if (check_model(t, json_object_get(root, "model"), path, err) != 0) goto fail;
    if (vs.begin == vs.end || ms.begin == ms.end) {
        pg_err(err, "%s: model.%s missing", path, vs.begin == vs.end ? "vocab" : "merges");
        goto fail;
    }
    if (text[vs.begin] != '{' || text[ms.begin] != '[') {
        pg_err(err, "%s: model.%s has the wrong type", path, text[vs.begin] != '{' ? "vocab" : "merges");
        goto fail;
    }
    if (tokjson_read_vocab(text, vs, &ve, &nv, &t->arena, path, err) != 0) goto fail;
    if (tokjson_read_merges(text, ms, &mg, &nm, &merge_arena, path, err) != 0) goto fail;
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added)) {
        pg_err(err, "%s: added_tokens must be an array", path);
        goto fail;
    }
    if (load_normalizer(t, json_object_get(root, "normalizer"), path, err) != 0) goto fail;
    added_ids = malloc((json_array_size(added) + 1) * sizeof *added_ids);
    if (!added_ids) {
        pg_err(err, "out of memory");
        goto fail;
    }
    if (load_vocab_and_merges(t, ve, nv, mg, nm, added, added_ids, path, err) != 0) goto fail;
    if (load_added_tokens(t, added, added_ids, path, err) != 0) goto fail;
    int byte_level = 0;
    if (load_pretokenizer(t, json_object_get(root, "pre_tokenizer"), path, &byte_level, err) != 0) goto fail;
    if (!byte_level) {
        pg_err(err, "%s: pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)", path);
        goto fail;
    }
    json_t *dec = json_object_get(root, "decoder");
    if (!json_type_of(dec) || strcmp(json_type_of(dec), "ByteLevel") != 0) {
        pg_err(err, "%s: decoder must be ByteLevel (got %s)", path, json_type_of(dec) ? json_type_of(dec) : "none");
        goto fail;
    }
    if (load_postprocessor(t, json_object_get(root, "post_processor"), path, err) != 0) goto fail;
    json_decref(root);
    root = NULL;
    free(added_ids);
    free(ve);
    free(mg);
    free(merge_arena);
    free(rest);
    free(text);
    added_ids = NULL, ve = NULL, mg = NULL, merge_arena = rest = text = NULL;
    if (load_config(t, dir, err) != 0) goto fail;
    *out = t;
    return 0;
fail:
    json_decref(root);
    free(added_ids);
    free(ve);
    free(mg);
    free(merge_arena);
    free(rest);
    free(text);
    tok_free(t);
    return -1;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    tok_cache_free(t);
    for (size_t i = 0; i < t->n_added; i++) {
        AddedToken *a = &t->added_tok[i];
        if (a->norm != a->content) free(a->norm);
        free(a->content);
        free(a->bytes);
    }
    free(t->added_tok);
    tok_matcher_free(&t->match_raw);
    tok_matcher_free(&t->match_norm);
    for (int i = 0; i < t->n_split; i++) pcre2_code_free(t->split[i].re);
    free(t->piece);
    free(t->bytes);
    free(t->bytes_len);
    free(t->special);
    free(t->added);
    free(t->arena);
    free(t->bytes_arena);
    strmap_free(&t->vocab);
    strmap_free(&t->vocab_bytes);
    strmap_free(&t->added_map);
    free(t->merges);
    free(t->post.prefix);
    free(t->post.suffix);
    free(t->bos_token);
    free(t->eos_token);
    free(t->pad_token);
    for (size_t i = 0; i < t->n_templates; i++) {
        free(t->templates[i].name);
        free(t->templates[i].source);
    }
    free(t->templates);
    free(t);
}

/* ---- accessors ------------------------------------------------------------------------ */

int tok_vocab_size(const Tokenizer *t) { return t->n_ids; }

const char *tok_token_bytes(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || !t->bytes[id]) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->bytes_len[id];
    return t->bytes[id];
}

const char *tok_token_piece(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids ? t->piece[id] : NULL;
}

int32_t tok_token_id(const Tokenizer *t, const char *piece) {
    size_t len = strlen(piece);
    int32_t id = strmap_get(&t->added_map, piece, len);
    return id >= 0 ? id : strmap_get(&t->vocab, piece, len);
}

int tok_is_special(const Tokenizer *t, int32_t id) { return id >= 0 && id < t->n_ids && t->special[id]; }

int32_t tok_bos_id(const Tokenizer *t) { return t->bos_id; }
int32_t tok_eos_id(const Tokenizer *t) { return t->eos_id; }
int32_t tok_pad_id(const Tokenizer *t) { return t->pad_id; }
const char *tok_bos_token(const Tokenizer *t) { return t->bos_token; }
const char *tok_eos_token(const Tokenizer *t) { return t->eos_token; }
int tok_add_bos(const Tokenizer *t) { return t->add_bos; }

const char *tok_chat_template(const Tokenizer *t, const char *name) {
    if (!name) name = "default";
    for (size_t i = 0; i < t->n_templates; i++)
        if (!strcmp(t->templates[i].name, name)) return t->templates[i].source;
    return NULL;
}

/* ---- encode --------------------------------------------------------------------------- */

typedef struct EncCtx {
    const Tokenizer *t;
    IdVec *out;
} EncCtx;

static int on_piece(void *ctx, const char *p, size_t len) {
    EncCtx *c = ctx;
    return tok_bpe_word(c->t, p, len, c->out);
}

static int on_normalized_split(void *ctx, const char *p, size_t len, int32_t id) {
    EncCtx *c = ctx;
    if (id >= 0) return idvec_push(c->out, id);
    return tok_pretokenize(c->t, p, len, on_piece, ctx);
}

static int on_raw_split(void *ctx, const char *p, size_t len, int32_t id) {
    EncCtx *c = ctx;
    if (id >= 0) return idvec_push(c->out, id);
    char *norm;
    size_t nlen;
    if (tok_normalize(c->t, p, len, &norm, &nlen) != 0) return -1;
    const char *s = norm ? norm : p;
    int r = c->t->match_norm.n ? tok_added_split(c->t, &c->t->match_norm, 1, s, nlen, on_normalized_split, ctx)
                               : tok_pretokenize(c->t, s, nlen, on_piece, ctx);
    free(norm);
    return r;
}

int tok_encode(const Tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids, size_t *n,
               char *err) {
    *ids = NULL;
    *n = 0;
    IdVec out = {0};
    EncCtx c = {t, &out};
    char *clean = NULL;
    size_t clean_len = 0, clean_cap = 0;
    if (len > ((size_t)1 << 30)) return pg_err(err, "tok_encode: text of %zu bytes is over the 1 GiB limit", len);
    /* Invalid UTF-8 cannot come from a Python str; read it as from_utf8_lossy would. */
    if (tok_utf8_valid_prefix(text, len) != len) {
        tok_utf8_lossy(text, len, 1, &clean, &clean_len, &clean_cap);
        if (!clean) return pg_err(err, "tok_encode: out of memory");
        text = clean;
        len = clean_len;
    }
    if (add_special && t->has_post && idvec_append(&out, t->post.prefix, t->post.n_prefix) != 0) goto oom;
    if (tok_added_split(t, &t->match_raw, 0, text, len, on_raw_split, &c) != 0) goto oom;
    if (add_special && t->has_post && idvec_append(&out, t->post.suffix, t->post.n_suffix) != 0) goto oom;
    free(clean);
    if (!out.v) out.v = malloc(sizeof(int32_t)); /* a valid pointer even for no ids */
    if (!out.v) return pg_err(err, "tok_encode: out of memory");
    *ids = out.v;
    *n = out.n;
    return 0;
oom:
    free(clean);
    free(out.v);
    return pg_err(err, "tok_encode: out of memory or regex failure on %zu bytes", len);
}

/* ---- decode --------------------------------------------------------------------------- */

char *tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, int skip_special, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_ids) total += t->bytes_len[ids[i]];
    char *raw = malloc(total + 1);
    if (!raw) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->bytes[id]) continue; /* HF skips unknown ids */
        if (skip_special && t->special[id]) continue;
        memcpy(raw + o, t->bytes[id], t->bytes_len[id]);
        o += t->bytes_len[id];
    }
    char *out = NULL;
    size_t out_len = 0, out_cap = 0;
    if (tok_utf8_valid_prefix(raw, o) == o) {
        raw[o] = 0;
        out = raw;
        out_len = o;
    } else {
        tok_utf8_lossy(raw, o, 1, &out, &out_len, &out_cap);
        free(raw);
        if (!out) return NULL;
    }
    if (len) *len = out_len;
    return out;
}
