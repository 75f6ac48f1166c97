#!/usr/bin/env Rscript
# Reference values for ALNMPredictorLib.stats' Firth-penalised logistic regression (the fit used under
# separation, logistic_fit(..., separation = "firth")), computed by R's logistf package itself.
#
# Run from the repository root (development only; the tests read the JSON and never need R):
#   Rscript Testing/R/stats_firth_logistf.R
# Writes Testing/fixtures/stats_firth_logistf.json. Needs jsonlite and logistf (>= 1.26). logistf is on
# CRAN; where CRAN is out of reach, install it from its GitHub source (github.com/georgheinze/logistf, with
# formula.tools and operator.tools from github.com/decisionpatterns) into a throwaway library:
#   R CMD INSTALL -l /tmp/rlib operator.tools formula.tools logistf ; R_LIBS=/tmp/rlib Rscript ...
#
# Each case: the data (rounded through decimal strings, so R and Python read the same doubles), then
# logistf's fit with Wald inference (pl = FALSE, as ALNM Predictor reports) and a tight convergence
# control: coefficients, standard errors sqrt(diag(var)), Wald p-values, the penalised log-likelihood at
# the estimate, iterations and convergence.
suppressPackageStartupMessages({
  library(jsonlite)
  library(logistf)
})

out_path <- file.path("Testing", "fixtures", "stats_firth_logistf.json")
rnd <- function(x, d) as.numeric(sprintf(paste0("%.", d, "f"), x))
num <- function(x) unname(as.numeric(x))
ctrl <- logistf.control(maxit = 1000, maxstep = 5, lconv = 1e-13, gconv = 1e-13, xconv = 1e-13)

case <- function(name, y, columns, note) {
  data <- as.data.frame(columns)
  data$y <- y
  fit <- logistf(reformulate(names(columns), "y"), data = data, pl = FALSE, control = ctrl)
  list(
    name = name, note = note, y = y, columns = columns, terms = c("(Intercept)", names(columns)),
    ref = list(
      coef = num(coef(fit)), se = num(sqrt(diag(fit$var))), p = num(fit$prob),
      loglik_penalised = num(fit$loglik["full"]), iterations = num(fit$iter),
      converged = isTRUE(fit$conv[1] < 1e-10 && fit$conv[2] < 1e-10 && fit$conv[3] < 1e-10),
      conv = num(fit$conv)
    )
  )
}

set.seed(20261207)
cases <- list()

x <- sort(rnd(rnorm(40), 4))
cases[[length(cases) + 1]] <- case("complete_separation", as.numeric(x > 0.1), list(x = x),
                                   "one continuous predictor separates the outcome completely")

# four levels, dummy-coded against level 0: level 0 has events only, level 3 a single case
g <- c(rep(0, 2), rep(1, 24), rep(2, 12), 3)
y <- c(1, 1, rep(0, 13), rep(1, 11), 0, rep(1, 11), 1)
cases[[length(cases) + 1]] <- case("sparse_levels", y,
                                   list(g1 = as.numeric(g == 1), g2 = as.numeric(g == 2), g3 = as.numeric(g == 3)),
                                   "quasi-complete separation by sparse categorical levels")

n <- 60
x1 <- rnd(rnorm(n), 4)
x2 <- rnd(rnorm(n, 50, 10), 2)
b <- as.numeric(runif(n) < 0.3)
p <- plogis(-0.5 + 0.8 * x1 + 0.03 * (x2 - 50))
y <- as.numeric(runif(n) < p)
y[b == 1] <- 1  # every case with b = 1 is an event: quasi-complete separation along b
cases[[length(cases) + 1]] <- case("separated_binary_with_continuous", y, list(b = b, x1 = x1, x2 = x2),
                                   "a binary factor whose every case is an event, beside two continuous predictors")

n <- 25
z1 <- rnd(rnorm(n), 4)
z2 <- rnd(rnorm(n), 4)
y <- as.numeric(runif(n) < plogis(0.3 + 1.2 * z1 - 0.7 * z2))
cases[[length(cases) + 1]] <- case("small_sample_not_separated", y, list(z1 = z1, z2 = z2),
                                   "no separation: Firth's estimate shrinks the ML estimate towards zero")

result <- list(
  meta = list(
    generated_by = "Testing/R/stats_firth_logistf.R", r_version = R.version.string,
    logistf_version = as.character(packageVersion("logistf")),
    control = "logistf.control(maxit = 1000, maxstep = 5, lconv = 1e-13, gconv = 1e-13, xconv = 1e-13), pl = FALSE"
  ),
  cases = cases
)
stopifnot(all(vapply(cases, function(c) c$ref$converged, logical(1))))
json <- toJSON(result, auto_unbox = TRUE, digits = NA, na = "null", null = "null")
writeLines(json, out_path)
cat("wrote", out_path, "\n")
