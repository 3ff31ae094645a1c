/* Input decks: defaults, parsing, overrides, every class of error message. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lethe/deck.h"
#include "testutil.h"

static char dir[256];

static const char *write_deck(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static char data_file[512];

static int setup(void **state) {
  (void)state;
  if (lt_test_mkdir(dir, sizeof(dir), "deck") != 0) return 1;
  snprintf(data_file, sizeof(data_file), "%s/data.h5", dir);
  FILE *f = fopen(data_file, "w");
  if (!f) return 1;
  fputs("x", f);
  fclose(f);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return lt_test_rmtree(dir);
}

static lt_status load(lt_ctx *ctx, const char *text, int n, char **sets, lt_deck *d) {
  char buf[2048];
  snprintf(buf, sizeof(buf), "[data]\npath = %s\n%s", data_file, text);
  lt_error_clear(ctx);
  return lt_deck_load(ctx, write_deck("d.ini", buf), n, sets, d);
}

static void test_defaults_and_values(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  lt_deck d;
  assert_int_equal(load(ctx,
                        "[model]\nhidden = 64, 32,16\nactivation = gelu\n"
                        "[optim]\nkind = adamw\nlr = 3e-4\nbatch_size = 64\n"
                        "[run]\nseed = 17\n",
                        0, NULL, &d),
                   LT_OK);
  assert_int_equal(d.nhidden, 3);
  assert_int_equal(d.hidden[0], 64);
  assert_int_equal(d.hidden[2], 16);
  assert_int_equal(d.activation, 2);
  assert_int_equal(d.optim_kind, 2);
  assert_true(d.lr == 3e-4);
  assert_int_equal(d.batch_size, 64);
  assert_int_equal(d.seed, 17);
  assert_int_equal(d.epochs, 5);       /* default */
  assert_true(d.momentum == 0.9);      /* default */
  assert_int_equal(d.data_scale, 1);   /* default */
  /* overrides win, in order */
  char *sets[] = {"optim.lr=0.5", "train.epochs=2", "optim.lr=0.25", "model.hidden="};
  assert_int_equal(load(ctx, "[optim]\nlr = 0.1\n", 4, sets, &d), LT_OK);
  assert_true(d.lr == 0.25);
  assert_int_equal(d.epochs, 2);
  assert_int_equal(d.nhidden, 0);
  /* the resolved text parses back to the same deck */
  char text[8192];
  lt_deck_text(&d, text, sizeof(text));
  assert_non_null(strstr(text, "[optim]\n"));
  assert_non_null(strstr(text, "lr = 0.25\n"));
  lt_deck d2;
  lt_error_clear(ctx);
  assert_int_equal(lt_deck_load(ctx, write_deck("r.ini", text), 0, NULL, &d2), LT_OK);
  char text2[8192];
  lt_deck_text(&d2, text2, sizeof(text2));
  assert_string_equal(text, text2);
  lt_ctx_destroy(&ctx);
}

static void expect_error(lt_ctx *ctx, const char *text, int n, char **sets, lt_status code,
                         const char *const *needles) {
  lt_deck d;
  lt_status st = load(ctx, text, n, sets, &d);
  if (st != code) fail_msg("expected status %d, got %d (%s)", code, st, ctx->errmsg);
  for (int i = 0; needles[i]; i++)
    if (!strstr(ctx->errmsg, needles[i]))
      fail_msg("message '%s' lacks '%s'", ctx->errmsg, needles[i]);
}

static void test_errors(void **state) {
  (void)state;
  lt_ctx *ctx = lt_test_ctx();
  expect_error(ctx, "[optim]\nlrr = 0.1\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"d.ini:4", "unknown key 'lrr'", "did you mean [optim] lr", NULL});
  expect_error(ctx, "[optim]\nlr = -0.1\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"d.ini:4", "[optim] lr = '-0.1'", "out of range", "(0, 10]", NULL});
  expect_error(ctx, "[optim]\nmomentum = 1\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"momentum", "[0, 1)", NULL});
  expect_error(ctx, "[optim]\nlr = fast\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"not a number", NULL});
  expect_error(ctx, "[model]\nactivation = sigmoid\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"sigmoid", "relu, tanh, gelu", NULL});
  expect_error(ctx, "[modle]\nhidden = 3\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"unknown section [modle]", "did you mean [model]", NULL});
  expect_error(ctx, "[model]\nhidden = 3,x\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"hidden", "integers", NULL});
  expect_error(ctx, "[train]\nepochs = 0\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"epochs", "[1, 1000000]", NULL});
  expect_error(ctx, "[optim]\nnesterov = true\nmomentum = 0\n", 0, NULL, LT_ERR_DECK,
               (const char *[]){"nesterov", "momentum > 0", NULL});
  expect_error(ctx, "garbage line\n", 0, NULL, LT_ERR_DECK, (const char *[]){"d.ini:3", NULL});
  char *bad_set[] = {"optim.lr"};
  expect_error(ctx, "", 1, bad_set, LT_ERR_DECK, (const char *[]){"--set 'optim.lr'", NULL});
  char *typo_set[] = {"train.epoch=3"};
  expect_error(ctx, "", 1, typo_set, LT_ERR_DECK,
               (const char *[]){"--set:1", "did you mean [train] epochs", NULL});
  /* missing data file is named */
  lt_deck d;
  lt_error_clear(ctx);
  assert_int_equal(lt_deck_load(ctx, write_deck("m.ini", "[data]\npath = /nonexistent/x.h5\n"), 0,
                                NULL, &d),
                   LT_ERR_IO);
  assert_non_null(strstr(ctx->errmsg, "/nonexistent/x.h5"));
  /* required key */
  lt_error_clear(ctx);
  assert_int_equal(lt_deck_load(ctx, write_deck("n.ini", "[train]\nepochs = 1\n"), 0, NULL, &d),
                   LT_ERR_DECK);
  assert_non_null(strstr(ctx->errmsg, "[data] path is missing"));
  /* missing deck */
  lt_error_clear(ctx);
  assert_int_equal(lt_deck_load(ctx, "/nonexistent/deck.ini", 0, NULL, &d), LT_ERR_IO);
  assert_non_null(strstr(ctx->errmsg, "/nonexistent/deck.ini"));
  lt_ctx_destroy(&ctx);
}

static void test_edit_distance(void **state) {
  (void)state;
  assert_int_equal(lt_edit_distance("lr", "lr"), 0);
  assert_int_equal(lt_edit_distance("lrr", "lr"), 1);
  assert_int_equal(lt_edit_distance("kitten", "sitting"), 3);
  assert_int_equal(lt_edit_distance("", "abc"), 3);
}

static void test_doc_lists_every_key(void **state) {
  (void)state;
  FILE *f = tmpfile();
  lt_deck_print_doc(f, 1);
  long len = ftell(f);
  rewind(f);
  char *buf = calloc((size_t)len + 1, 1);
  assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  /* every key of the resolved text is documented */
  lt_deck d;
  lt_ctx *ctx = lt_test_ctx();
  assert_int_equal(load(ctx, "", 0, NULL, &d), LT_OK);
  char text[8192];
  lt_deck_text(&d, text, sizeof(text));
  int nkeys = 0;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '[') continue;
    char key[64];
    assert_int_equal(sscanf(line, "%63s =", key), 1);
    char needle[80];
    snprintf(needle, sizeof(needle), "| `%s` |", key);
    if (!strstr(buf, needle)) fail_msg("key %s not documented", key);
    nkeys++;
  }
  assert_true(nkeys > 20);
  free(buf);
  lt_ctx_destroy(&ctx);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_defaults_and_values, setup, teardown),
    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    cmocka_unit_test(test_edit_distance),
    cmocka_unit_test_setup_teardown(test_doc_lists_every_key, setup, teardown),
};
LT_TEST_MPI_MAIN("deck", tests)
