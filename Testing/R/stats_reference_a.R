#!/usr/bin/env Rscript
# Reference values for ALNMPredictorLib.stats: roc.py, calibration.py, decision.py.
#
# Run from the repository root (development only; the tests read the JSON and never need R):
#   Rscript Testing/R/stats_reference_a.R
# Writes Testing/fixtures/stats_reference_a.json with the input data of every dataset and the
# values R gives on them. Needs pROC, rms and jsonlite. Two packages are not in Debian, so their
# published algorithms are written out below in base R (marked where used):
#   - ResourceSelection::hoslem.test (0.3-6),
#   - rmda's calculate.nb / decision_curve / plot_clinical_impact formulas (1.6).
# Any R error or NaN result is stored as {"error": "..."}; the Python side must then raise StatsError.

suppressPackageStartupMessages({
  library(pROC)
  library(rms)
  library(jsonlite)
})

out_path <- file.path("Testing", "fixtures", "stats_reference_a.json")
set.seed(20240611)

# ---------------------------------------------------------------- datasets
# y: 0/1 outcome; score_a, score_b: two markers; prob: predicted probabilities.
# Values are rounded so that ties are real.
make <- function(n, prev, sep_a = 1, sep_b = 0.5, rho = 0.5, digits = 2, prob_digits = 3,
                 prob_slope = 1, prob_shift = 0) {
  y <- rbinom(n, 1, prev)
  while (sum(y) < 2 || sum(y) > n - 2) y <- rbinom(n, 1, prev)
  z1 <- rnorm(n)
  z2 <- rho * z1 + sqrt(1 - rho^2) * rnorm(n)
  a <- round(z1 + sep_a * y, digits)
  b <- round(z2 + sep_b * y, digits)
  lp <- qlogis(mean(y)) + 0.8 * (z1 + sep_a * (y - mean(y)))
  prob <- round(plogis(prob_shift + prob_slope * lp), prob_digits)
  list(y = y, score_a = a, score_b = b, prob = prob)
}

ds <- list()
ds$small25 <- make(25, 0.4, digits = 1, prob_digits = 2)
ds$small25_ordinal <- local({
  d <- make(25, 0.4)
  d$score_a <- as.numeric(cut(d$score_a, c(-Inf, -0.5, 0.2, 0.8, 1.5, Inf), labels = FALSE))
  d$score_b <- as.numeric(cut(d$score_b, c(-Inf, -0.3, 0.5, 1.2, Inf), labels = FALSE))
  d$prob <- c(0.1, 0.25, 0.4, 0.6, 0.85)[d$score_a]
  d
})
ds$n30_three_events <- local({
  d <- make(30, 0.1, digits = 1)
  y <- rep(0, 30); y[c(4, 17, 26)] <- 1; d$y <- y
  d$score_a <- round(d$score_a + 0.9 * y, 1)
  d
})
ds$n40_reversed <- make(40, 0.5, sep_a = -0.8, sep_b = 0.3, digits = 1, prob_slope = -1)
ds$n60_perfect <- local({
  d <- make(60, 0.5, digits = 2)
  d$score_a <- round(ifelse(d$y == 1, 2 + runif(60), runif(60)), 2)
  d
})
ds$n80_constant <- local({
  d <- make(80, 0.3, digits = 2)
  d$score_b <- rep(0.7, 80)
  d$prob <- rep(0.3, 80)
  d
})
ds$n100 <- make(100, 0.45, digits = 2, prob_digits = 2, prob_slope = 0.7, prob_shift = 0.3)
ds$n150_rare <- make(150, 0.06, sep_a = 1.5, digits = 2)
ds$n200_prob01 <- local({
  d <- make(200, 0.4, digits = 2, prob_digits = 2, prob_slope = 1.8)
  d$prob[c(3, 50)] <- 0
  d$prob[c(7, 120, 121)] <- 1
  d
})
ds$n300 <- make(300, 0.35, rho = 0.8, digits = 2, prob_digits = 3, prob_slope = 1.3)
ds$n500 <- make(500, 0.3, sep_a = 0.8, sep_b = 0.7, rho = 0.6, digits = 3)
ds$n1000 <- make(1000, 0.25, sep_a = 1.1, sep_b = 0.9, rho = 0.7, digits = 3, prob_shift = -0.2)
ds$n2000_ties <- make(2000, 0.2, sep_a = 1, sep_b = 1.1, rho = 0.5, digits = 1, prob_digits = 2)
ds$n400_coarse <- local({
  d <- make(400, 0.3, digits = 2, prob_digits = 1, prob_slope = 0.6)
  d$score_a <- round(d$score_a, 0)
  d
})
ds$n20_single_event <- local({
  d <- make(20, 0.3)
  y <- rep(0, 20); y[9] <- 1; d$y <- y
  d
})

# Store with full precision and read back, so R computes on exactly the values Python will read.
ds <- fromJSON(toJSON(ds, digits = NA))

# ---------------------------------------------------------------- helpers
safe <- function(expr) {
  tryCatch(suppressWarnings(expr), error = function(e) list(error = conditionMessage(e)))
}
num <- function(x) if (is.na(x)) NA else if (is.infinite(x)) as.character(x) else unname(x)
rocobj <- function(y, s) roc(y, s, direction = "<", levels = c(0, 1), quiet = TRUE)

# ResourceSelection::hoslem.test (0.3-6), written out in base R.
hoslem <- function(y, yhat, g = 10) {
  qq <- unique(quantile(yhat, probs = seq(0, 1, 1 / g)))
  cutyhat <- cut(yhat, breaks = qq, include.lowest = TRUE)
  observed <- xtabs(cbind(y0 = 1 - y, y1 = y) ~ cutyhat)
  expected <- xtabs(cbind(yhat0 = 1 - yhat, yhat1 = yhat) ~ cutyhat)
  chisq <- sum((observed - expected)^2 / expected)
  G <- length(unique(cutyhat))
  list(statistic = chisq, df = G - 2, p = 1 - pchisq(chisq, G - 2))
}

# rmda (1.6) calculate.nb, cohort design, opt-in policy: high risk when risk > threshold.
rmda_nb <- function(y, risk, thresholds) {
  rho <- mean(y == 1)
  tpf <- sapply(thresholds, function(t) sum(risk[y == 1] > t) / sum(y == 1))
  fpf <- sapply(thresholds, function(t) sum(risk[y == 0] > t) / sum(y == 0))
  high <- sapply(thresholds, function(t) sum(risk > t) / length(risk))
  nb <- tpf * rho - (thresholds / (1 - thresholds)) * (1 - rho) * fpf
  # the "All" curve of decision_curve: everyone's risk is 1
  nb_all <- rho - (thresholds / (1 - thresholds)) * (1 - rho)
  list(threshold = thresholds, net_benefit = nb, net_benefit_all = nb_all,
       standardized_net_benefit = nb / rho, tpr = tpf, fpr = fpf,
       high_risk = 1000 * high, high_risk_events = 1000 * tpf * rho)
}

binom_ci <- function(x, n, level) {
  if (n == 0) return(c(NA, NA))
  as.numeric(binom.test(x, n, conf.level = level)$conf.int)
}

metrics_at <- function(y, s, thr, level = 0.95) {
  called <- s >= thr
  tp <- sum(called & y == 1); fp <- sum(called & y == 0)
  fn <- sum(!called & y == 1); tn <- sum(!called & y == 0)
  r <- function(a, b) if (b > 0) a / b else NA
  list(threshold = num(thr), level = level, tp = tp, fp = fp, tn = tn, fn = fn,
       accuracy = r(tp + tn, tp + fp + tn + fn), sensitivity = r(tp, tp + fn),
       specificity = r(tn, tn + fp), ppv = r(tp, tp + fp), npv = r(tn, tn + fn),
       accuracy_ci = binom_ci(tp + tn, tp + fp + tn + fn, level),
       sensitivity_ci = binom_ci(tp, tp + fn, level), specificity_ci = binom_ci(tn, tn + fp, level),
       ppv_ci = binom_ci(tp, tp + fp, level), npv_ci = binom_ci(tn, tn + fn, level))
}

calcurve <- function(y, p, breaks) {
  cy <- cut(p, breaks, include.lowest = TRUE)
  k <- as.integer(cy)
  keep <- sort(unique(k))
  lapply(keep, function(j) {
    i <- k == j
    ci <- binom_ci(sum(y[i]), sum(i), 0.95)
    list(bin = j, n = sum(i), events = sum(y[i]), predicted = mean(p[i]),
         observed = mean(y[i]), observed_low = ci[1], observed_high = ci[2])
  })
}

# ---------------------------------------------------------------- reference values
res <- list(auc_ci = list(), delong_test = list(), youden = list(), classification_metrics = list(),
            hosmer_lemeshow = list(), calibration_stats = list(), lowess = list(),
            calibration_curve = list(), net_benefit = list())

for (name in names(ds)) {
  d <- ds[[name]]
  y <- d$y
  for (col in c("score_a", "score_b", "prob")) {
    for (level in c(0.95, 0.9)) {
      if (level == 0.9 && col != "score_a") next
      v <- safe({
        r <- rocobj(y, d[[col]])
        ci <- ci.auc(r, method = "delong", conf.level = level)  # NA with a single case of a class
        se <- if (is.na(ci[1])) NA else sqrt(var(r, method = "delong"))
        list(auc = as.numeric(auc(r)), low = ci[1], high = ci[3], se = se)
      })
      res$auc_ci[[length(res$auc_ci) + 1]] <- c(list(dataset = name, score = col, level = level), v)
    }
  }
  for (pair in list(c("score_a", "score_b"), c("score_a", "prob"), c("score_a", "score_a"))) {
    if (pair[2] == "score_a" && !(name %in% c("small25", "n300"))) next
    v <- safe({
      t <- roc.test(rocobj(y, d[[pair[1]]]), rocobj(y, d[[pair[2]]]), method = "delong", paired = TRUE)
      list(auc_a = unname(t$estimate[1]), auc_b = unname(t$estimate[2]),
           z = unname(t$statistic), p = t$p.value)
    })
    res$delong_test[[length(res$delong_test) + 1]] <- c(list(dataset = name, a = pair[1], b = pair[2]), v)
  }
  for (col in c("score_a", "score_b", "prob")) {
    v <- safe({
      best <- coords(rocobj(y, d[[col]]), "best", best.method = "youden", transpose = FALSE)
      list(thresholds = lapply(best$threshold, num))
    })
    res$youden[[length(res$youden) + 1]] <- c(list(dataset = name, score = col), v)
  }
  # cut-offs: pROC's first Youden threshold on score_a (if finite), and 0.5 on prob
  yt <- safe(coords(rocobj(y, d$score_a), "best", best.method = "youden", transpose = FALSE)$threshold[1])
  if (is.numeric(yt) && is.finite(yt)) {
    res$classification_metrics[[length(res$classification_metrics) + 1]] <-
      c(list(dataset = name, score = "score_a"), metrics_at(y, d$score_a, yt))
  }
  res$classification_metrics[[length(res$classification_metrics) + 1]] <-
    c(list(dataset = name, score = "prob"), metrics_at(y, d$prob, 0.5, level = 0.9))
  for (g in c(10, 5, 20)) {
    v <- safe({
      h <- hoslem(y, d$prob, g)
      if (!is.finite(h$statistic)) stop("statistic is NaN")
      if (h$df < 1) stop("df < 1")
      h
    })
    res$hosmer_lemeshow[[length(res$hosmer_lemeshow) + 1]] <- c(list(dataset = name, groups = g), v)
  }
  v <- safe({
    s <- val.prob(d$prob, y, pl = FALSE)
    if (any(!is.finite(s[c("Intercept", "Slope")]))) stop("non-finite calibration")
    # The same recalibration fitted by glm to a tight tolerance: rms lrm.fit can stop early on a
    # flat likelihood (e.g. a single event). val.prob with constant p misplaces Emax/E90 (rms quirk).
    fin <- d$prob > 0 & d$prob < 1
    mle <- if (length(unique(d$prob)) > 1) {
      coef(glm(y[fin] ~ qlogis(d$prob[fin]), family = binomial,
               control = glm.control(epsilon = 1e-14, maxit = 100)))
    } else c(NA, NA)
    list(intercept = s[["Intercept"]], slope = s[["Slope"]], brier = s[["Brier"]],
         eavg = s[["Eavg"]], emax = s[["Emax"]], e90 = s[["E90"]],
         intercept_mle = unname(mle[1]), slope_mle = unname(mle[2]))
  })
  res$calibration_stats[[length(res$calibration_stats) + 1]] <- c(list(dataset = name), v)
  for (f in c(2 / 3, 0.3)) {
    lw <- lowess(d$prob, y, f = f, iter = 0)
    res$lowess[[length(res$lowess) + 1]] <- list(dataset = name, frac = f, x = lw$x, y = lw$y)
  }
  if (length(unique(d$prob)) > 1) {
    qq <- unique(quantile(d$prob, probs = seq(0, 1, 1 / 10)))
    res$calibration_curve[[length(res$calibration_curve) + 1]] <-
      list(dataset = name, bins = 10, method = "quantile", rows = calcurve(y, d$prob, qq))
  }
  res$calibration_curve[[length(res$calibration_curve) + 1]] <-
    list(dataset = name, bins = 5, method = "uniform", rows = calcurve(y, d$prob, seq(0, 1, length.out = 6)))
  thr <- round(seq(0, 0.99, by = 0.01), 2)
  res$net_benefit[[length(res$net_benefit) + 1]] <- c(list(dataset = name), rmda_nb(y, d$prob, thr))
}

meta <- list(
  generated_by = "Testing/R/stats_reference_a.R",
  R = R.version.string,
  packages = list(pROC = as.character(packageVersion("pROC")), rms = as.character(packageVersion("rms"))),
  reimplemented = c("ResourceSelection::hoslem.test 0.3-6", "rmda 1.6 calculate.nb / plot_clinical_impact")
)
dir.create(dirname(out_path), showWarnings = FALSE, recursive = TRUE)
writeLines(toJSON(list(meta = meta, datasets = ds, reference = res), digits = NA, auto_unbox = TRUE,
                  na = "null", null = "null"),
           out_path)
cat("wrote", out_path, file.info(out_path)$size, "bytes\n")
