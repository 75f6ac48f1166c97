#!/usr/bin/env Rscript
# Reference values for ALNMPredictorLib.stats.logistic_fit on data whose fitted linear predictor is
# extreme (|eta| well beyond 37, where plogis(eta) rounds to exactly 0 or 1) but NOT separated, so the
# maximum-likelihood estimate exists and glm finds it.
#
# Run from the repository root (development only; the tests read the JSON and never need R):
#   Rscript Testing/R/stats_logistic_extreme.R
# Writes Testing/fixtures/stats_logistic_extreme.json. Needs jsonlite.
#
# What glm does there (R's binomial() family, src/library/stats/src/family.c, and glm.fit):
#   linkinv(eta) = t / (1 + t) with t = exp(eta), except t = DBL_EPSILON for eta < -30 and
#                  t = 1/DBL_EPSILON for eta > 30, so mu stays inside [eps/(1+eps), 1/(1+eps)];
#   mu.eta(eta)  = exp(eta) / (1 + exp(eta))^2, except DBL_EPSILON where |eta| > 30;
#   working response z = eta + (y - mu) / mu.eta, weights mu.eta^2 / (mu (1 - mu)); the step is halved
#   towards the previous coefficients while the deviance is not finite.
# The constants are checked below against this R's own binomial() (stopifnot), and stored in "meta".
#
# Every case: the data, then
#   ref:     glm with a tight tolerance, restarted at its own estimate so the SEs are those at the MLE
#            itself (as Testing/R/stats_reference_b.R): coef, se, z, p, deviance, null deviance, AIC;
#   default: glm with its default control (epsilon 1e-8), its warnings, and whether it converged;
#   max_abs_eta: the largest |fitted linear predictor| at the MLE (above 37 in every case).
suppressPackageStartupMessages(library(jsonlite))

out_path <- file.path("Testing", "fixtures", "stats_logistic_extreme.json")

eps <- .Machine$double.eps
fam <- binomial()
stopifnot(
  fam$linkinv(31) == 1 / (1 + eps), fam$linkinv(-31) == eps / (1 + eps),
  fam$linkinv(29.9) == exp(29.9) / (1 + exp(29.9)),
  fam$mu.eta(30.5) == eps, fam$mu.eta(-30.5) == eps, fam$mu.eta(29.9) == exp(29.9) / (1 + exp(29.9))^2
)

# Round through a decimal string: R and Python then read exactly the same doubles.
rnd <- function(x, d) as.numeric(sprintf(paste0("%.", d, "f"), x))
num <- function(x) unname(as.numeric(x))

glm_tight <- function(formula, data) {
  ctrl <- glm.control(epsilon = 1e-14, maxit = 100)
  fit <- suppressWarnings(glm(formula, family = binomial, data = data, control = ctrl))
  suppressWarnings(glm(formula, family = binomial, data = data, control = ctrl, start = coef(fit)))
}

case <- function(name, y, columns, note) {
  data <- as.data.frame(columns)
  data$y <- y
  formula <- reformulate(names(columns), "y")
  warnings <- character(0)
  default <- withCallingHandlers(
    glm(formula, family = binomial, data = data),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  fit <- glm_tight(formula, data)
  stopifnot(fit$converged, all(is.finite(coef(fit))))
  s <- summary(fit)$coefficients
  eta <- fit$linear.predictors
  stopifnot(max(abs(eta)) > 37)
  # Not separated: some class overlap along the fitted linear predictor (the MLE is finite).
  stopifnot(max(eta[y == 0]) > min(eta[y == 1]))
  cat(sprintf("%-36s n=%d events=%d max|eta|=%.1f coef=%s se=%s\n", name, length(y), sum(y),
              max(abs(eta)), paste(signif(coef(fit), 6), collapse = ","),
              paste(signif(s[, 2], 6), collapse = ",")))
  list(
    name = name, note = note, y = y, columns = columns,
    max_abs_eta = max(abs(eta)),
    ref = list(term = rownames(s), coef = num(s[, 1]), se = num(s[, 2]), z = num(s[, 3]), p = num(s[, 4]),
               deviance = deviance(fit), null_deviance = fit$null.deviance, aic = AIC(fit),
               iterations = fit$iter),
    default = list(coef = num(coef(default)), se = num(summary(default)$coefficients[, 2]),
                   deviance = deviance(default), converged = default$converged, iterations = default$iter,
                   warnings = as.list(unique(warnings)))
  )
}

cases <- list()
add <- function(x) cases[[length(cases) + 1]] <<- x
sim_y <- function(eta) rbinom(length(eta), 1, plogis(eta))

local({
  # One predictor spread so that eta = 0.3 + 1.6 x spans about +-45; the extra draws near 0 make the
  # classes overlap there, so the MLE is finite.
  set.seed(101)
  x <- rnd(c(runif(170, -28, 28), rnorm(30, 0, 1.5)), 3)
  add(case("n200_eta45", sim_y(0.3 + 1.6 * x), list(x = x),
           "one predictor, fitted eta spans about +-45"))
})
local({
  # A training tumour score like the real cohort's: most values moderate, a long tail up to 26;
  # truth intercept 0.288, slope 1.611 (the unpenalised estimates reported there).
  set.seed(102)
  score <- rnd(c(rnorm(150, 0, 1.8), runif(40, 5, 26), runif(10, -20, -5)), 3)
  add(case("n200_tumour_score_tail26", sim_y(0.288 + 1.611 * score), list(tumor_score = score),
           "a score with a tail to 26 and slope about 1.6 (eta up to about 42)"))
})
local({
  # Two predictors, one extreme (eta spans about +-45 from x1 alone) and one ordinary.
  set.seed(103)
  n <- 300
  x1 <- rnd(c(runif(250, -30, 30), rnorm(50, 0, 1)), 3)
  x2 <- rnd(rnorm(n), 3)
  add(case("n300_two_predictors_one_extreme", sim_y(-0.4 + 1.5 * x1 + 0.8 * x2), list(x1 = x1, x2 = x2),
           "x1 extreme, x2 ordinary"))
})
local({
  # Near (not at) quasi-separation: y = (x > 0) except two cases on the wrong side close to 0, so the
  # slope is large but finite and most fitted eta lie far beyond +-37.
  set.seed(104)
  x <- rnd(runif(100, -10, 10), 3)
  x[1:2] <- c(-0.15, 0.2)
  y <- as.integer(x > 0)
  y[1:2] <- c(1L, 0L)
  add(case("n100_near_quasi_separation", y, list(x = x),
           "y = (x > 0) but for two cases near 0: large finite slope, |eta| up to about 100"))
})
local({
  # Extreme only on one side: most cases have eta far below -37 (y = 0), events are moderate.
  set.seed(105)
  x <- rnd(c(runif(120, -40, -5), rnorm(80, 0, 1.2)), 3)
  add(case("n200_one_sided_extreme", sim_y(0.5 + 1.2 * x), list(x = x),
           "eta down to about -47 on the non-event side only"))
})

local({
  # The mirror image: events far beyond eta = +37 (where plogis rounds to exactly 1), non-events moderate.
  set.seed(106)
  x <- rnd(c(runif(120, 5, 45), rnorm(80, 0, 1.2)), 3)
  add(case("n200_one_sided_extreme_events", sim_y(-0.5 + 1.2 * x), list(x = x),
           "eta up to about +47 on the event side only"))
})

result <- list(
  meta = list(
    generated_by = "Testing/R/stats_logistic_extreme.R",
    r_version = R.version.string,
    double_eps = eps,
    logit_thresh = 30,
    note = paste("ref: glm(binomial) with epsilon 1e-14, restarted at its estimate (SEs at the MLE);",
                 "default: glm with default control, and its warnings")
  ),
  cases = cases
)
json <- toJSON(result, auto_unbox = TRUE, digits = NA, na = "null", null = "null")
writeLines(json, out_path)
cat("wrote", out_path, file.info(out_path)$size, "bytes\n")
