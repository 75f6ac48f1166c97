#!/usr/bin/env Rscript
# Reference for Harrell's bootstrap optimism correction, rms::validate (validate.lrm + predab.resample),
# with the exact bootstrap resamples it drew, so that a Python implementation can be checked against it
# resample by resample.
#
# Run from the repository root (development only; the tests read the JSON and never need R):
#   Rscript Testing/R/stats_validate_reference.R
# Writes Testing/fixtures/stats_validate_reference.json. Needs rms and jsonlite.
#
# ------------------------------------------------------------------------------------------------
# What validate(lrm(y ~ x1 + x2 + x3, x = TRUE, y = TRUE), B = 200, method = "boot") does (rms 6.5):
#
# predab.resample, method "boot": after set.seed(boot_seed), for i in 1:B it draws
#     train <- sample(n, replace = TRUE)       # = sample(n, n, replace = TRUE); nothing else uses the RNG
# refits lrm.fit on x[train, ], y[train] (maxit 12; a fit that fails is skipped and not counted in n),
# and with that fit's coefficients b computes the linear predictor lp = b0 + x %*% b on ALL rows. Then
#     training_i = measure(lp[train], y[train], evalfit = TRUE)   apparent, on the resample
#     test_i     = measure(lp,        y,        evalfit = FALSE)  the resample's model on the original data
# training = mean(training_i), test = mean(test_i), optimism = training - test,
# index.corrected = index.orig - optimism, where index.orig = measure(lp_orig, y, evalfit = TRUE) of the
# original fit on the original data; n = number of resamples whose fit succeeded.
#
# The indices (validate.lrm's discrim), with x the linear predictor on the data being assessed, y 0/1,
# P = plogis(x) and n the number of rows:
#   Dxy       Somers' Dxy of x and y: Hmisc::somers2(x, y)["Dxy"] = 2 * (C - 1/2), C = AUC with ties
#             counted 1/2 (mean rank of the events, midranks) -- an exact rank statistic.
#   R2        Nagelkerke R2 of the model: evalfit (index.orig, training): the fit's own stats["R2"];
#             test: R2 of the recalibration refit lrm.fit(x, y) on the original data.
#   Intercept, Slope
#             calibration intercept and slope: the coefficients a, b of the logistic recalibration
#             y ~ a + b * x (lrm.fit(x, y)), i.e. of y on the linear predictor of the model being
#             assessed. On the data a model was fitted to (index.orig, training) they are 0 and 1 by
#             definition (rms does not refit there); test: the refit on the original data.
#   Emax      max |p - plogis(a + b * qlogis(p))| for p on seq(0, 1, 0.0005), a and b the CORRECTED
#             Intercept and Slope: only the index.corrected column is meaningful (index.orig and
#             training are 0; test, optimism and index.corrected all hold this value).
#   D         discrimination index (LR - 1) / n, LR the model likelihood-ratio chi-square (test: of the
#             recalibration refit).
#   U         unreliability index: evalfit -2 / n; test (L01 - deviance of the recalibration refit - 2) / n,
#             L01 = -2 log-likelihood of y under P unchanged.
#   Q         quality index D - U.
#   B         Brier score mean((P - y)^2) of the probabilities P = plogis(x) as they are (no recalibration).
#   g         Gini's mean difference of the linear predictor (test: of b * x), GiniMd.
#   gp        Gini's mean difference of the probabilities (test: of plogis(a + b * x)).
#
# lrm.fit stops when -2 log-likelihood changes by less than eps = 0.025 between Newton steps, which leaves
# its coefficients about 1e-8 (relative) short of the maximum-likelihood estimate. So the fixture holds two
# tables:
#   validate:       rms::validate exactly as called above (what a user of rms sees);
#   validate_exact: the same call, same seed and resamples, with lrm.fit's eps set to 1e-10 in the rms
#                   namespace, so every fit (original, bootstrap, recalibration) is the MLE (a glm loop
#                   over the same resamples agrees to ~1e-13): the deterministic reference that an
#                   implementation with exact ML fits must equal. (With eps 1e-12 some fits cannot meet
#                   it within validate's 12 iterations, the -2 log-likelihood being a sum of 150 terms
#                   rounded at ~1e-14, and would be dropped as failures.)
# Both tables are reproduced here by a manual loop over the stored indices (stopifnot), which proves the
# indices are the ones validate drew; the exact one is also reproduced with glm fits.
#
# Stored: the data (y, x1, x2, x3); the B x n matrix of bootstrap row indices, 1-based as in R (row i =
# resample i); both tables as rows x columns; the per-resample training and test Dxy, Intercept, Slope
# and B of the exact loop; the seeds.
# ------------------------------------------------------------------------------------------------
suppressPackageStartupMessages({
  library(rms)
  library(jsonlite)
})

out_path <- file.path("Testing", "fixtures", "stats_validate_reference.json")
data_seed <- 20240701
boot_seed <- 20240702
tight_eps <- 1e-10
B <- 200
n <- 150

rnd <- function(x, d) as.numeric(sprintf(paste0("%.", d, "f"), x))

set.seed(data_seed)
x1 <- rnd(rnorm(n), 3)
x2 <- rnd(rnorm(n), 3)
x3 <- rnd(runif(n, 0, 10), 2)
y <- rbinom(n, 1, plogis(-0.4 + 0.9 * x1 + 0.45 * x2 + 0.03 * x3))
d <- data.frame(y = y, x1 = x1, x2 = x2, x3 = x3)
X <- as.matrix(d[, c("x1", "x2", "x3")])

rows <- c("Dxy", "R2", "Intercept", "Slope", "Emax", "D", "U", "Q", "B", "g", "gp")
cols <- c("index.orig", "training", "test", "optimism", "index.corrected", "n")

# ---- 1. validate as a user calls it
f <- lrm(y ~ x1 + x2 + x3, data = d, x = TRUE, y = TRUE)
set.seed(boot_seed)
v <- rms::validate(f, B = B, method = "boot")  # jsonlite has a validate() too
v <- unclass(v)[rows, cols]
stopifnot(all(v[, "n"] == B))

# ---- 2. the resamples: re-drawn from the same seed exactly as predab.resample draws them
set.seed(boot_seed)
idx <- t(vapply(seq_len(B), function(i) sample(n, replace = TRUE), integer(n)))  # B x n, 1-based

# ---- 3. validate's discrim, written out, over those resamples; fit_fun(x, y) returns c(intercept, slopes)
somers_dxy <- function(x, y) unname(somers2(x, y)["Dxy"])
brier <- function(x, y) mean((plogis(x) - y)^2)
manual <- function(fit_fun, recal_fun) {
  per <- matrix(NA_real_, B, 8, dimnames = list(NULL, c("Dxy_train", "Dxy_test", "Intercept_train",
    "Intercept_test", "Slope_train", "Slope_test", "B_train", "B_test")))
  for (i in seq_len(B)) {
    j <- idx[i, ]
    b <- fit_fun(X[j, , drop = FALSE], y[j])
    lp <- drop(b[1] + X %*% b[-1])
    ab <- recal_fun(lp, y)
    per[i, ] <- c(somers_dxy(lp[j], y[j]), somers_dxy(lp, y), 0, ab[1], 1, ab[2],
                  brier(lp[j], y[j]), brier(lp, y))
  }
  b0 <- fit_fun(X, y)
  lp0 <- drop(b0[1] + X %*% b0[-1])
  orig <- c(Dxy = somers_dxy(lp0, y), Intercept = 0, Slope = 1, B = brier(lp0, y))
  training <- colMeans(per[, c("Dxy_train", "Intercept_train", "Slope_train", "B_train")])
  test <- colMeans(per[, c("Dxy_test", "Intercept_test", "Slope_test", "B_test")])
  optimism <- training - test
  tab <- cbind(index.orig = orig, training = training, test = test, optimism = optimism,
               index.corrected = orig - optimism)
  rownames(tab) <- names(orig)
  list(table = tab, per = per)
}
check <- function(tab, ref, tol) {
  for (r in rownames(tab)) {
    for (c in colnames(tab)) {
      a <- tab[r, c]; b <- ref[r, c]
      stopifnot(abs(a - b) <= tol * max(abs(b), 1e-300) || abs(a - b) < 1e-15)
    }
  }
}
lrm_coef <- function(x, y) unname(coef(lrm.fit(x, y, maxit = 12, tol = 1e-12)))
lrm_recal <- function(lp, y) unname(coef(lrm.fit(lp, y, tol = 1e-13)))
m_default <- manual(lrm_coef, lrm_recal)
check(m_default$table, v, 1e-13)  # the very same computations: equal to rounding

# ---- 4. the exact table: lrm.fit converged to the MLE (eps 1e-12 instead of 0.025), same resamples
rms_ns <- asNamespace("rms")
lrm_fit_default <- get("lrm.fit", envir = rms_ns)
lrm_fit_tight <- lrm_fit_default
formals(lrm_fit_tight)$eps <- tight_eps
assignInNamespace("lrm.fit", lrm_fit_tight, ns = "rms")
f_exact <- lrm(y ~ x1 + x2 + x3, data = d, x = TRUE, y = TRUE)
set.seed(boot_seed)
v_exact <- rms::validate(f_exact, B = B, method = "boot")
v_exact <- unclass(v_exact)[rows, cols]
stopifnot(all(v_exact[, "n"] == B))
lrm_coef_tight <- function(x, y) unname(coef(rms:::lrm.fit(x, y, maxit = 12, tol = 1e-12)))
lrm_recal_tight <- function(lp, y) unname(coef(rms:::lrm.fit(lp, y, tol = 1e-13)))
m_exact_lrm <- manual(lrm_coef_tight, lrm_recal_tight)
check(m_exact_lrm$table, v_exact, 1e-13)
assignInNamespace("lrm.fit", lrm_fit_default, ns = "rms")

# and the same with glm (IRLS to 1e-14, restarted at its estimate): a different algorithm, same MLE
glm_coef <- function(x, y) {
  ctrl <- glm.control(epsilon = 1e-14, maxit = 100)
  fit <- glm.fit(cbind(1, x), y, family = binomial(), control = ctrl)
  unname(coef(glm.fit(cbind(1, x), y, family = binomial(), control = ctrl, start = coef(fit))))
}
m_exact <- manual(glm_coef, glm_coef)
check(m_exact$table, v_exact, 1e-10)

rel <- function(a, b) max(abs(a - b) / pmax(abs(b), 1e-300))
cat("validate (default eps) vs exact, max relative difference per index:\n")
for (r in rownames(m_exact$table)) cat(sprintf("  %-9s %.2e\n", r, rel(v[r, 1:5], v_exact[r, 1:5])))
cat("manual glm loop vs validate_exact:",
    sprintf("%.2e", rel(m_exact$table[, 1:5], v_exact[rownames(m_exact$table), 1:5])), "\n")
print(round(v_exact, 6))

as_rows <- function(tab) {
  lapply(setNames(rownames(tab), rownames(tab)), function(r) as.list(tab[r, ]))
}
result <- list(
  meta = list(
    generated_by = "Testing/R/stats_validate_reference.R",
    r_version = R.version.string,
    packages = list(rms = as.character(packageVersion("rms")), Hmisc = as.character(packageVersion("Hmisc"))),
    call = "set.seed(boot_seed); validate(lrm(y ~ x1 + x2 + x3, x = TRUE, y = TRUE), B = 200, method = \"boot\")",
    data_seed = data_seed, boot_seed = boot_seed, B = B, n = n,
    indices_base = 1,
    indices_note = paste("boot_indices[i] are the rows (1-based, as in R) of resample i, drawn by",
                         "sample(n, replace = TRUE) in order after set.seed(boot_seed); subtract 1 for numpy"),
    exact_note = paste("validate_exact: the same call with rms's lrm.fit convergence eps set to", tight_eps,
                       "(default 0.025), so every fit is the MLE; validate: the call as is"),
    tight_eps = tight_eps
  ),
  data = list(y = y, x1 = x1, x2 = x2, x3 = x3),
  coef_orig = list(default = unname(coef(f)), exact = unname(coef(f_exact))),
  boot_indices = idx,
  validate = as_rows(v),
  validate_exact = as_rows(v_exact),
  per_resample_exact = as.data.frame(m_exact$per)
)
json <- toJSON(result, auto_unbox = TRUE, digits = NA, na = "null", null = "null", dataframe = "columns",
               matrix = "rowmajor")
writeLines(json, out_path)
cat("wrote", out_path, file.info(out_path)$size, "bytes\n")
