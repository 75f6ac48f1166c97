# Reference values for ALNMPredictorLib.stats part B (reclassification, agreement, logistic).
#
# Writes Testing/fixtures/stats_reference_b.json: every input data set (rounded, so that ties are real and
# the JSON stays small) and the numbers the R reference implementations give for it:
#   * Hmisc::improveProb            -> continuous NRI, IDI        (stats.nri / stats.idi)
#   * PredictABEL::reclassification -> categorical NRI            (stats.nri(cutoffs=...))
#     PredictABEL is not packaged for Debian, so its documented computation is reproduced in base R
#     below (cut(..., include.lowest = TRUE, right = FALSE), then improveProb on the category numbers
#     divided by the number of categories, CI with 1.96), exactly as its source does.
#   * psych::ICC                    -> ICC1/ICC2/ICC3 single-rater rows, lmer = FALSE (ANOVA) and the
#                                      default lmer = TRUE (REML) (stats.icc / stats.icc_many); the
#                                      lmer rows change in their late digits from run to run (lme4's
#                                      optimiser), so the tests compare them to its tolerance only
#   * psych::cohen.kappa            -> unweighted kappa and its bounds (stats.cohen_kappa)
#   * stats::glm(family = binomial) -> coefficients, Wald SE and p, Wald OR intervals (stats.logistic_fit)
#     fitted with a tight convergence tolerance so the reference is the MLE itself; backward
#     elimination by joint Wald p and by drop1 likelihood-ratio p (stats.backward_stepwise).
#
# Run from the repository root (development only; the tests never need R):
#   Rscript Testing/R/stats_reference_b.R
suppressPackageStartupMessages({
  library(Hmisc)
  library(psych)
  library(jsonlite)
})

out_path <- "Testing/fixtures/stats_reference_b.json"

# Round through a decimal string: R and Python then read exactly the same doubles.
rnd <- function(x, d) {
  x[] <- as.numeric(sprintf(paste0("%.", d, "f"), x))
  x
}
num <- function(x) unname(as.numeric(x))

# ------------------------------------------------------------------------------------------------
# NRI / IDI

improve_ref <- function(y, p_old, p_new) {
  x <- improveProb(x1 = p_old, x2 = p_new, y = y)
  z <- qnorm(0.975)
  list(
    nri = x$nri, se = x$se.nri, p = 2 * pnorm(-abs(x$z.nri)),
    low = x$nri - z * x$se.nri, high = x$nri + z * x$se.nri,
    nri_events = x$nri.ev, se_events = x$se.nri.ev,
    nri_nonevents = x$nri.ne, se_nonevents = x$se.nri.ne,
    idi = x$idi, se_idi = x$se.idi, p_idi = 2 * pnorm(-abs(x$z.idi)),
    low_idi = x$idi - z * x$se.idi, high_idi = x$idi + z * x$se.idi
  )
}

# PredictABEL::reclassification(data, cOutcome, predrisk1, predrisk2, cutoff), NRI(Categorical) part.
predictabel_nri <- function(y, p_old, p_new, cutoff) {
  c1 <- cut(p_old, breaks = cutoff, include.lowest = TRUE, right = FALSE)
  c2 <- cut(p_new, breaks = cutoff, include.lowest = TRUE, right = FALSE)
  x <- improveProb(x1 = as.numeric(c1) * (1 / length(levels(c1))),
                   x2 = as.numeric(c2) * (1 / length(levels(c2))), y = y)
  list(
    nri = x$nri, se = x$se.nri, p = 2 * pnorm(-abs(x$z.nri)),
    low = x$nri - 1.96 * x$se.nri, high = x$nri + 1.96 * x$se.nri,
    nri_events = x$nri.ev, nri_nonevents = x$nri.ne
  )
}

make_probs <- function(seed, n, prev, signal_old, signal_new, digits, same_frac = 0, extremes = FALSE) {
  set.seed(seed)
  y <- rbinom(n, 1, prev)
  y[1] <- 1; y[2] <- 0; y[3] <- 1; y[4] <- 0  # both classes, at least 2 of each
  lat <- rnorm(n)
  lo <- qlogis(prev) + signal_old * (y - prev) + lat * 0.8
  ln <- qlogis(prev) + signal_new * (y - prev) + lat * 0.8 + rnorm(n, sd = 1)
  p_old <- rnd(plogis(lo), digits)
  p_new <- rnd(plogis(ln), digits)
  if (same_frac > 0) {
    same <- seq_len(n) <= round(same_frac * n)
    p_new[same] <- p_old[same]
  }
  if (extremes) {
    p_old[5:6] <- c(0, 1)
    p_new[7:8] <- c(1, 0)
  }
  list(y = y, p_old = p_old, p_new = p_new)
}

prob_specs <- list(
  list(name = "n25_balanced", seed = 11, n = 25, prev = 0.5, so = 1, sn = 2, d = 2, cut = c(0.2, 0.4)),
  list(name = "n60_ties_1dp", seed = 12, n = 60, prev = 0.4, so = 1, sn = 2, d = 1, cut = c(0.3, 0.5)),
  list(name = "n200_prev10", seed = 13, n = 200, prev = 0.1, so = 1.5, sn = 3, d = 3, cut = c(0.1, 0.3)),
  list(name = "n1000", seed = 14, n = 1000, prev = 0.35, so = 1, sn = 2.5, d = 3, cut = c(0.25, 0.5, 0.75)),
  list(name = "n1500_prev5", seed = 15, n = 1500, prev = 0.05, so = 2, sn = 3, d = 3, cut = c(0.05, 0.2)),
  list(name = "n100_half_unchanged", seed = 16, n = 100, prev = 0.45, so = 1, sn = 2, d = 2, same = 0.5,
       cut = c(0.5)),
  list(name = "n80_worse_model", seed = 17, n = 80, prev = 0.4, so = 3, sn = 0.5, d = 2, cut = c(0.2, 0.4)),
  list(name = "n40_extremes", seed = 18, n = 40, prev = 0.5, so = 1, sn = 2, d = 2, ext = TRUE,
       cut = c(0.3, 0.6)),
  list(name = "n300_strong", seed = 19, n = 300, prev = 0.3, so = 0.5, sn = 4, d = 3, cut = c(0.1, 0.3)),
  list(name = "n30_5events", seed = 20, n = 30, prev = 0.15, so = 1, sn = 2, d = 2, cut = c(0.2)),
  list(name = "n500_2dp", seed = 21, n = 500, prev = 0.5, so = 1, sn = 1.5, d = 2, cut = c(0.2, 0.4, 0.6, 0.8)),
  list(name = "n120_prev80_1dp", seed = 22, n = 120, prev = 0.8, so = 1, sn = 2, d = 1, cut = c(0.5, 0.8)),
  # nobody changes: NRI 0 with SE 0, so z and p are NaN (null in the JSON)
  list(name = "n25_unchanged", seed = 23, n = 25, prev = 0.4, so = 1, sn = 2, d = 2, same = 1, cut = c(0.3))
)

improve_cases <- lapply(prob_specs, function(s) {
  dat <- make_probs(s$seed, s$n, s$prev, s$so, s$sn, s$d,
                    same_frac = if (is.null(s$same)) 0 else s$same,
                    extremes = isTRUE(s$ext))
  list(
    name = s$name, y = dat$y, p_old = dat$p_old, p_new = dat$p_new, cutoffs = I(s$cut),
    continuous = improve_ref(dat$y, dat$p_old, dat$p_new),
    categorical = predictabel_nri(dat$y, dat$p_old, dat$p_new, c(0, s$cut, 1))
  )
})

# ------------------------------------------------------------------------------------------------
# ICC

icc_rows <- function(x, lmer) {
  r <- suppressWarnings(suppressMessages(ICC(x, lmer = lmer)))$results[1:3, ]
  out <- lapply(1:3, function(i) list(
    icc = r$ICC[i], F = r$F[i], df1 = r$df1[i], df2 = r$df2[i], p = r$p[i],
    low = r[["lower bound"]][i], high = r[["upper bound"]][i]
  ))
  names(out) <- c("ICC1", "ICC2", "ICC3")
  out
}

make_ratings <- function(seed, n, k, sd_subject, sd_rater, sd_error, digits, mean = 0, skew = FALSE,
                         integer = FALSE) {
  set.seed(seed)
  s <- rnorm(n, sd = sd_subject)
  r <- rnorm(k, sd = sd_rater)
  x <- mean + outer(s, r, "+") + matrix(rnorm(n * k, sd = sd_error), n, k)
  if (skew) x <- exp(x)
  if (integer) x <- pmin(pmax(round(3 + x), 1), 5)
  rnd(x, digits)
}

icc_specs <- list(
  list(name = "n25_k2", seed = 31, n = 25, k = 2, ss = 1, sr = 0.2, se = 0.6, d = 2),
  list(name = "n50_k2_no_rater_effect", seed = 32, n = 50, k = 2, ss = 1, sr = 0, se = 0.8, d = 2),
  list(name = "n50_k3_rater_bias", seed = 33, n = 50, k = 3, ss = 1, sr = 1, se = 0.5, d = 2),
  list(name = "n1000_k2", seed = 34, n = 1000, k = 2, ss = 1, sr = 0.1, se = 0.4, d = 3),
  list(name = "n1000_k3_ties_1dp", seed = 35, n = 1000, k = 3, ss = 1, sr = 0.2, se = 0.5, d = 1),
  list(name = "n30_k4", seed = 36, n = 30, k = 4, ss = 2, sr = 0.5, se = 1, d = 2),
  list(name = "n40_k2_negative", seed = 37, n = 40, k = 2, ss = 0.05, sr = 0.3, se = 1, d = 2),
  list(name = "n25_k3_likert", seed = 38, n = 25, k = 3, ss = 1, sr = 0.3, se = 0.6, d = 0, int = TRUE),
  list(name = "n100_k2_excellent", seed = 39, n = 100, k = 2, ss = 3, sr = 0.05, se = 0.2, d = 3),
  list(name = "n60_k2_skewed", seed = 40, n = 60, k = 2, ss = 1, sr = 0.1, se = 0.3, d = 3, skew = TRUE),
  list(name = "n25_k2_large_offset", seed = 41, n = 25, k = 2, ss = 2, sr = 0.5, se = 1, d = 2,
       mean = 1e4),
  list(name = "n200_k3", seed = 42, n = 200, k = 3, ss = 1, sr = 0.3, se = 0.9, d = 2)
)

icc_cases <- lapply(icc_specs, function(s) {
  x <- make_ratings(s$seed, s$n, s$k, s$ss, s$sr, s$se, s$d,
                    mean = if (is.null(s$mean)) 0 else s$mean,
                    skew = isTRUE(s$skew), integer = isTRUE(s$int))
  list(name = s$name, ratings = unname(x), anova = icc_rows(x, FALSE), reml = icc_rows(x, TRUE))
})

# Many features at once (stats.icc_many): n subjects x k raters x m features, per-feature psych ICC.
make_stack <- function(seed, n, k, m) {
  set.seed(seed)
  arr <- array(NA_real_, c(n, k, m))
  for (f in seq_len(m)) {
    arr[, , f] <- make_ratings(seed * 100 + f, n, k, sd_subject = runif(1, 0, 2),
                               sd_rater = runif(1, 0, 0.5), sd_error = runif(1, 0.1, 1), digits = 2,
                               mean = rnorm(1, sd = 10))
  }
  arr
}
icc_many_cases <- lapply(list(list(name = "n30_k2_m25", seed = 51, n = 30, k = 2, m = 25),
                              list(name = "n50_k3_m20", seed = 52, n = 50, k = 3, m = 20)), function(s) {
  arr <- make_stack(s$seed, s$n, s$k, s$m)
  refs <- lapply(c("ICC1", "ICC2", "ICC3"), function(form) {
    rows <- lapply(seq_len(s$m), function(f) icc_rows(arr[, , f], FALSE)[[form]])
    lapply(c(icc = "icc", low = "low", high = "high", F = "F", p = "p"),
           function(col) sapply(rows, `[[`, col))
  })
  names(refs) <- c("ICC1", "ICC2", "ICC3")
  # ratings stored subject-major: ratings[i][j][f]
  list(name = s$name, ratings = lapply(seq_len(s$n), function(i) unname(arr[i, , , drop = TRUE])),
       ref = refs)
})

# ------------------------------------------------------------------------------------------------
# Cohen's kappa

kappa_ref <- function(a, b) {
  k <- suppressWarnings(cohen.kappa(cbind(a, b)))
  list(kappa = k$kappa, low = k$confid[1, 1], high = k$confid[1, 3], var = k$var.kappa)
}

rate_pair <- function(seed, n, levels, probs, agree, flip_to = NULL) {
  set.seed(seed)
  a <- sample(levels, n, replace = TRUE, prob = probs)
  b <- ifelse(runif(n) < agree, a, sample(levels, n, replace = TRUE, prob = probs))
  if (!is.null(flip_to)) b[seq_len(5)] <- flip_to
  list(a = a, b = b)
}

kappa_specs <- list(
  list(name = "n25_binary", seed = 61, n = 25, lv = 0:1, pr = c(0.5, 0.5), ag = 0.6),
  list(name = "n50_3level", seed = 62, n = 50, lv = 1:3, pr = c(0.3, 0.4, 0.3), ag = 0.5),
  list(name = "n100_4level", seed = 63, n = 100, lv = 0:3, pr = c(0.4, 0.3, 0.2, 0.1), ag = 0.55),
  list(name = "n1000_binary", seed = 64, n = 1000, lv = 0:1, pr = c(0.6, 0.4), ag = 0.7),
  list(name = "n1000_3level_imbalanced", seed = 65, n = 1000, lv = 1:3, pr = c(0.8, 0.15, 0.05), ag = 0.6),
  list(name = "n40_strings", seed = 66, n = 40, lv = c("benign", "indeterminate", "malignant"),
       pr = c(0.5, 0.2, 0.3), ag = 0.7),
  list(name = "n30_near_perfect", seed = 67, n = 30, lv = 0:1, pr = c(0.5, 0.5), ag = 0.97),
  list(name = "n60_no_agreement", seed = 68, n = 60, lv = 0:1, pr = c(0.5, 0.5), ag = 0),
  list(name = "n80_extra_level_b", seed = 69, n = 80, lv = 1:2, pr = c(0.5, 0.5), ag = 0.6, flip = 3),
  list(name = "n200_binary_prev10", seed = 70, n = 200, lv = 0:1, pr = c(0.9, 0.1), ag = 0.6),
  list(name = "n25_5level", seed = 71, n = 25, lv = 1:5, pr = rep(0.2, 5), ag = 0.5),
  list(name = "n500_binary_high", seed = 72, n = 500, lv = 0:1, pr = c(0.55, 0.45), ag = 0.9)
)

kappa_cases <- lapply(kappa_specs, function(s) {
  r <- rate_pair(s$seed, s$n, s$lv, s$pr, s$ag, s$flip)
  c(list(name = s$name, a = r$a, b = r$b), kappa_ref(r$a, r$b))
})
# Systematic disagreement: kappa below zero.
local({
  set.seed(73)
  a <- rbinom(60, 1, 0.5)
  b <- ifelse(runif(60) < 0.8, 1 - a, a)
  kappa_cases[[length(kappa_cases) + 1]] <<- c(list(name = "n60_negative", a = a, b = b), kappa_ref(a, b))
})

# ------------------------------------------------------------------------------------------------
# Logistic regression

# glm's standard errors use the IRLS weights of its last iteration, one step behind the coefficients;
# restarting at the converged coefficients makes them the weights at the MLE itself, so the reference
# SEs (and the far-tail p values that amplify them) are exact rather than within glm's tolerance.
glm_tight <- function(formula, data) {
  ctrl <- glm.control(epsilon = 1e-14, maxit = 100)
  fit <- glm(formula, family = binomial, data = data, control = ctrl)
  glm(formula, family = binomial, data = data, control = ctrl, start = coef(fit))
}

# Our term names: numeric columns by name, factor dummies as "variable[level]".
term_names <- function(fit, data, factors) {
  nm <- names(coef(fit))
  out <- nm
  out[nm == "(Intercept)"] <- "(Intercept)"
  for (f in factors) {
    lv <- levels(data[[f]])
    for (l in lv[-1]) out[nm == paste0(f, l)] <- paste0(f, "[", l, "]")
  }
  out
}

glm_ref <- function(fit, data, factors) {
  s <- summary(fit)$coefficients
  ci <- exp(confint.default(fit))
  list(
    term = term_names(fit, data, factors), coef = num(s[, 1]), se = num(s[, 2]), p = num(s[, 4]),
    odds_ratio = num(exp(s[, 1])), or_low = num(ci[, 1]), or_high = num(ci[, 2]),
    deviance = deviance(fit), null_deviance = fit$null.deviance, aic = AIC(fit)
  )
}

# columns: named list of vectors; factors: names of categorical columns (stored as strings);
# reference: named list of reference levels (else the first sorted level).
glm_case <- function(name, y, columns, factors = character(0), reference = list()) {
  data <- as.data.frame(columns, stringsAsFactors = FALSE)
  for (f in factors) {
    data[[f]] <- factor(data[[f]])
    if (!is.null(reference[[f]])) data[[f]] <- relevel(data[[f]], ref = reference[[f]])
  }
  data$y <- y
  fit <- glm_tight(reformulate(names(columns), "y"), data)
  stopifnot(fit$converged)
  list(name = name, y = y, columns = columns, categorical = as.list(factors),
       reference = reference, ref = glm_ref(fit, data, factors))
}

sim_y <- function(eta) rbinom(length(eta), 1, plogis(eta))

glm_cases <- list()
add_glm <- function(case) glm_cases[[length(glm_cases) + 1]] <<- case

local({
  set.seed(81); n <- 25; x <- rnd(rnorm(n), 2)
  add_glm(glm_case("n25_one_continuous", sim_y(0.2 + 1.2 * x), list(x = x)))
})
local({
  set.seed(82); n <- 60; x1 <- rnd(rnorm(n), 1); x2 <- rnd(runif(n, 0, 5), 0)
  add_glm(glm_case("n60_ties", sim_y(-1 + x1 + 0.4 * x2), list(x1 = x1, x2 = x2)))
})
local({
  set.seed(83); n <- 200; size <- rnd(rgamma(n, 2, 1), 1); margin <- sample(c("circ", "non"), n, TRUE)
  add_glm(glm_case("n200_cont_binary_factor", sim_y(-2 + 0.6 * size + 0.9 * (margin == "non")),
                   list(size = size, margin = margin), "margin"))
})
local({
  set.seed(84); n <- 1000; x1 <- rnd(rnorm(n), 3); x2 <- rnd(rnorm(n), 3); x3 <- rnd(rnorm(n), 3)
  add_glm(glm_case("n1000_three_continuous", sim_y(0.3 + 0.8 * x1 - 0.5 * x2),
                   list(x1 = x1, x2 = x2, x3 = x3)))
})
local({
  set.seed(85); n <- 1500; a <- rnd(rnorm(n), 2); b <- rnd(rnorm(n), 2)
  grp <- sample(c("lo", "mid", "hi"), n, TRUE, prob = c(0.5, 0.3, 0.2))
  add_glm(glm_case("n1500_prev8_factor3", sim_y(-2.8 + 0.7 * a + 0.6 * (grp == "hi")),
                   list(a = a, b = b, grp = grp), "grp", list(grp = "lo")))
})
local({
  set.seed(86); n <- 300; adler <- as.character(sample(0:3, n, TRUE, prob = c(0.3, 0.3, 0.25, 0.15)))
  add_glm(glm_case("n300_adler4", sim_y(-0.5 + 0.3 * as.numeric(adler)), list(adler = adler), "adler"))
})
local({
  set.seed(87); n <- 120; x <- rnd(rnorm(n), 2)
  y <- as.integer(x > 0); flip <- which(abs(x) < 0.3)[1:4]; y[flip] <- 1 - y[flip]
  add_glm(glm_case("n120_near_separation", y, list(x = x)))
})
local({
  # Table-2-like training set: 866 patients, mixed factors, reference levels that are not first.
  set.seed(88); n <- 866
  age <- round(rnorm(n, 50, 10)); size <- rnd(rgamma(n, 4, 2), 1)
  location <- sample(c("left", "right"), n, TRUE)
  margin <- sample(c("circumscribed", "non-circumscribed"), n, TRUE, prob = c(0.2, 0.8))
  posterior <- sample(c("none", "shadowing", "enhancement"), n, TRUE, prob = c(0.5, 0.3, 0.2))
  us_alnm <- rbinom(n, 1, 0.3); tumor_score <- rnd(rnorm(n), 3); ln_score <- rnd(rnorm(n), 3)
  eta <- -1.5 + 0.4 * size + 0.8 * (margin == "non-circumscribed") + 0.9 * us_alnm +
    0.9 * tumor_score + 1.1 * ln_score
  add_glm(glm_case("n866_table2_like", sim_y(eta),
                   list(age = age, size = size, location = location, margin = margin,
                        posterior = posterior, us_alnm = us_alnm, tumor_score = tumor_score,
                        ln_score = ln_score),
                   c("location", "margin", "posterior"), list(posterior = "none")))
})
local({
  set.seed(89); n <- 40; x1 <- rnd(rnorm(n), 2); x2 <- rnd(rnorm(n), 2); x3 <- rbinom(n, 1, 0.5)
  add_glm(glm_case("n40_three_predictors", sim_y(0.5 * x1 + 0.5 * x3), list(x1 = x1, x2 = x2, x3 = x3)))
})
local({
  set.seed(90); n <- 500; big <- rnd(rnorm(n, 1000, 200), 0); small <- rnd(rnorm(n, 0, 0.002), 5)
  add_glm(glm_case("n500_mixed_scales", sim_y(-4 + 0.004 * big + 300 * small),
                   list(big = big, small = small)))
})
local({
  set.seed(91); n <- 100; count <- rpois(n, 3); x <- rnd(rnorm(n), 2)
  add_glm(glm_case("n100_counts", sim_y(-1 + 0.3 * count + 0.5 * x), list(count = count, x = x)))
})
local({
  set.seed(92); n <- 250; f1 <- sample(c("a", "b", "c"), n, TRUE); f2 <- sample(c("u", "v"), n, TRUE)
  add_glm(glm_case("n250_two_factors", sim_y(-0.3 + 0.8 * (f1 == "c") - 0.6 * (f2 == "v")),
                   list(f1 = f1, f2 = f2), c("f1", "f2"), list(f1 = "b")))
})

# Separated data sets: glm "converges" to huge coefficients with a warning; we must raise instead.
separation_case <- function(name, y, columns, factors, offending) {
  data <- as.data.frame(columns, stringsAsFactors = FALSE)
  for (f in factors) data[[f]] <- factor(data[[f]])
  data$y <- y
  warned <- FALSE
  fit <- withCallingHandlers(glm(reformulate(names(columns), "y"), binomial, data),
                             warning = function(w) { warned <<- TRUE; invokeRestart("muffleWarning") })
  list(name = name, y = y, columns = columns, categorical = as.list(factors), offending = offending,
       r_warned = warned, r_max_abs_coef = max(abs(coef(fit)), na.rm = TRUE))
}
separation_cases <- list()
local({
  set.seed(93); n <- 50; x <- rnd(rnorm(n), 2); z <- rnd(rnorm(n), 2)
  separation_cases[[1]] <<- separation_case("complete_x", as.integer(x > 0.1), list(x = x, z = z),
                                            character(0), list("x"))
  g <- sample(c("a", "b", "rare"), n, TRUE, prob = c(0.45, 0.45, 0.1)); g[1:3] <- "rare"
  y <- rbinom(n, 1, 0.4); y[g == "rare"] <- 1; y[4:5] <- c(0, 1)
  separation_cases[[2]] <<- separation_case("quasi_rare_level", y, list(z = z, g = g), "g",
                                            list("g[rare]"))
  w <- rnd(rnorm(n), 2)
  separation_cases[[3]] <<- separation_case("complete_x_plus_z", as.integer(x + z > 0),
                                            list(x = x, z = z, w = w), character(0), list("x", "z"))
})

# Backward elimination references.
wald_p <- function(fit, terms) {
  b <- coef(fit)[terms]
  v <- vcov(fit)[terms, terms, drop = FALSE]
  pchisq(as.numeric(t(b) %*% solve(v, b)), length(terms), lower.tail = FALSE)
}
stepwise_ref <- function(data, vars, factors, test, threshold = 0.05) {
  remaining <- vars
  steps <- list()
  repeat {
    fit <- glm_tight(reformulate(if (length(remaining)) remaining else "1", "y"), data)
    if (!length(remaining)) break
    if (test == "wald") {
      mm_assign <- attr(model.matrix(fit), "assign")
      labels <- attr(terms(fit), "term.labels")
      p <- sapply(seq_along(labels), function(i) wald_p(fit, names(coef(fit))[mm_assign == i]))
      names(p) <- labels
    } else {
      d <- drop1(fit, test = "LRT")
      p <- setNames(d[["Pr(>Chi)"]][-1], rownames(d)[-1])
    }
    worst <- names(p)[which.max(p)]
    if (!(p[[worst]] > threshold)) break
    remaining <- setdiff(remaining, worst)
    steps[[length(steps) + 1]] <- list(removed = worst, p = p[[worst]])
  }
  list(test = test, steps = steps, selected = as.list(remaining), fit = glm_ref(fit, data, factors))
}
stepwise_cases <- lapply(c(8, 5, 12), function(i) {
  case <- glm_cases[[i]]
  data <- as.data.frame(case$columns, stringsAsFactors = FALSE)
  for (f in unlist(case$categorical)) {
    data[[f]] <- factor(data[[f]])
    if (!is.null(case$reference[[f]])) data[[f]] <- relevel(data[[f]], ref = case$reference[[f]])
  }
  data$y <- case$y
  vars <- names(case$columns)
  list(glm_case = case$name,
       wald = stepwise_ref(data, vars, unlist(case$categorical), "wald"),
       lr = stepwise_ref(data, vars, unlist(case$categorical), "lr"))
})

# ------------------------------------------------------------------------------------------------

result <- list(
  meta = list(
    generated_by = "Testing/R/stats_reference_b.R",
    r_version = R.version.string,
    packages = list(Hmisc = as.character(packageVersion("Hmisc")),
                    psych = as.character(packageVersion("psych")),
                    lme4 = as.character(packageVersion("lme4"))),
    note = "categorical NRI reproduces PredictABEL::reclassification in base R (not packaged for Debian)"
  ),
  improveprob = improve_cases,
  icc = icc_cases,
  icc_many = icc_many_cases,
  kappa = kappa_cases,
  glm = glm_cases,
  separation = separation_cases,
  stepwise = stepwise_cases
)
json <- toJSON(result, auto_unbox = TRUE, digits = NA, na = "null", null = "null")
writeLines(json, out_path)
cat("wrote", out_path, file.info(out_path)$size, "bytes\n")
