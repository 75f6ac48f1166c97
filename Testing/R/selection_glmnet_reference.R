# Reference values for Testing/test_selection.py: glmnet's binomial lasso path and cv.glmnet
# (type.measure = "deviance") on a small seeded data set, with fixed fold ids.
# Run from the repository root (development only; the tests read the JSON, never R):
#   Rscript Testing/R/selection_glmnet_reference.R
suppressMessages({
  library(glmnet)
  library(jsonlite)
})
set.seed(20240611)
n <- 120
p <- 6
x <- matrix(rnorm(n * p), n, p)
x[, 2] <- 0.6 * x[, 1] + 0.8 * x[, 2]
x <- sweep(x, 2, c(1, 3, 0.5, 10, 1, 2), "*")  # unequal scales exercise the internal standardisation
eta <- -0.3 + 1.0 * x[, 1] - 0.25 * x[, 2] + 1.2 * x[, 3]
y <- rbinom(n, 1, plogis(eta))
foldid <- sample(rep(1:10, length.out = n))

fit <- glmnet(x, y, family = "binomial", thresh = 1e-14, maxit = 1e7)
cv <- cv.glmnet(x, y, family = "binomial", type.measure = "deviance", foldid = foldid,
                thresh = 1e-14, maxit = 1e7)
cf <- as.matrix(coef(fit))
out <- list(
  glmnet_version = as.character(packageVersion("glmnet")),
  x = unname(split(x, row(x))), y = y, foldid = foldid,
  lambda = fit$lambda,
  intercept = unname(cf[1, ]),
  coef = unname(split(t(cf[-1, ]), seq_len(ncol(cf)))),
  cv_lambda = cv$lambda, cvm = cv$cvm, cvsd = cv$cvsd, nzero = unname(cv$nzero),
  lambda_min = cv$lambda.min, lambda_1se = cv$lambda.1se
)
write(toJSON(out, digits = NA, auto_unbox = TRUE), "Testing/fixtures/selection_glmnet_reference.json")
