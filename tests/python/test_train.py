"""The supervised trainer: accuracy, settings, progress callbacks, determinism."""

import math
import unittest

import _util
import libdel


def tiny_dataset():
    """Eight 2x2 images, two classes separable by brightness."""
    images = bytes([20] * 16 + [230] * 16)
    return libdel.Dataset.from_arrays(images, [0, 0, 0, 0, 1, 1, 1, 1], 8, 2, 2, 1)


def tiny_model():
    return libdel.Model.from_spec("input 1 2 2; flatten; linear 2")


class TestTrainerSettings(unittest.TestCase):
    def test_keyword_settings_are_checked_by_c(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Trainer.supervised(tiny_model(), tiny_dataset(), batch_size=0)
        self.assertIn("del_trainer_set_batch_size", str(cm.exception))
        t = libdel.Trainer.supervised(tiny_model(), tiny_dataset())
        with self.assertRaises(libdel.InvalidArgument) as cm:
            t.set(momentum=1.5)
        self.assertIn("momentum", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            t.set(mean=[0.5], std=[0.0])

    def test_fit_times_split_the_fit(self):
        t = libdel.Trainer.supervised(tiny_model(), tiny_dataset(), batch_size=4, prefetch=0)
        self.assertEqual(t.fit_times(), (0.0, 0.0))
        t.fit(3)
        wait, step = t.fit_times()
        self.assertGreater(wait, 0.0)  # inline batches: every one waited for
        self.assertGreater(step, 0.0)

    def test_fit_zero_steps_raises_with_c_message(self):
        t = libdel.Trainer.supervised(tiny_model(), tiny_dataset(), batch_size=4)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            t.fit(0)
        self.assertIn("del_trainer_fit", str(cm.exception))

    def test_shape_mismatch_is_refused(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Trainer.supervised(libdel.Model.preset("mlp"), tiny_dataset())
        self.assertIn("del_trainer_new_supervised", str(cm.exception))

    def test_trainer_keeps_model_and_dataset_alive(self):
        t = libdel.Trainer.supervised(tiny_model(), tiny_dataset(), batch_size=4, lr=0.1,
                                      schedule="constant", mean=0.0, std=1.0)
        import gc
        gc.collect()
        t.fit(40)
        self.assertEqual(t.evaluate(tiny_dataset()), 1.0)


class TestTrainerAugment(unittest.TestCase):
    def test_pipeline_is_kept_alive_and_used(self):
        t = libdel.Trainer.supervised(tiny_model(), tiny_dataset(), batch_size=4, prefetch=0,
                                      augment=libdel.Augment(seed=1).add_flip_h(0.5))
        import gc
        gc.collect()
        self.assertEqual(t.augment.num_steps, 1)
        t.fit(5)
        t.set(augment=False)
        self.assertIsNone(t.augment)

    def test_pipeline_of_wrong_output_size_is_refused(self):
        aug = libdel.Augment().add_random_crop(1, 1)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Trainer.supervised(tiny_model(), tiny_dataset(), augment=aug)
        self.assertIn("del_trainer_set_augment", str(cm.exception))

    def test_prefetch_out_of_range_is_refused(self):
        with self.assertRaises(libdel.InvalidArgument) as cm:
            libdel.Trainer.supervised(tiny_model(), tiny_dataset(), prefetch=5)
        self.assertIn("del_trainer_set_prefetch", str(cm.exception))


def sided_dataset():
    """Eight 2x2 images: class 0 bright on the left, class 1 bright on the right,
    so a horizontal flip swaps the classes."""
    left, right = [230, 20, 230, 20], [20, 230, 20, 230]
    return libdel.Dataset.from_arrays(bytes(left * 4 + right * 4), [0] * 4 + [1] * 4,
                                      8, 2, 2, 1)


class TestTrainingWithAugmentation(unittest.TestCase):
    def fit(self, augment=None, steps=40, **settings):
        model = tiny_model().init(1)
        t = libdel.Trainer.supervised(model, sided_dataset(), batch_size=4, lr=0.1,
                                      schedule="constant", mean=0.0, std=1.0, **settings)
        if augment is not None:
            t.set(augment=augment)
        t.fit(steps)
        return t, model

    def test_certain_flip_teaches_the_mirrored_rule(self):
        plain, _ = self.fit()
        self.assertEqual(plain.evaluate(sided_dataset()), 1.0)
        # Every training image is mirrored, evaluation never augments: all wrong.
        flipped, _ = self.fit(libdel.Augment(seed=0).add_flip_h(1.0))
        self.assertEqual(flipped.evaluate(sided_dataset()), 0.0)

    def test_weights_do_not_depend_on_prefetch_or_threads(self):
        def run(prefetch, threads):
            old = libdel.get_num_threads()
            libdel.set_num_threads(threads)
            try:
                aug = libdel.Augment(seed=5).add_flip_h(0.5).add_cutout(0.5, 1).add_mixup(0.5)
                _, model = self.fit(aug, steps=12, prefetch=prefetch, seed=3)
                return model.params.tobytes()
            finally:
                libdel.set_num_threads(old)

        base = run(0, 1)
        self.assertEqual(run(2, 1), base)
        self.assertEqual(run(4, 2), base)

    def test_pipeline_seed_changes_the_weights(self):
        def run(seed):
            _, model = self.fit(libdel.Augment(seed=seed).add_flip_h(0.5), steps=6)
            return model.params.tobytes()

        self.assertEqual(run(1), run(1))
        self.assertNotEqual(run(1), run(2))

    def test_unlabeled_pipeline_is_stored_and_checked(self):
        t, _ = self.fit(steps=1)
        aug = libdel.Augment().add_flip_h()
        t.set(augment_unlabeled=aug)
        self.assertIs(t.augment_unlabeled, aug)
        with self.assertRaises(libdel.InvalidArgument) as cm:
            t.set(augment_unlabeled=libdel.Augment().add_random_crop(1, 1))
        self.assertIn("del_trainer_set_augment_unlabeled", str(cm.exception))
        t.set(augment_unlabeled=False)
        self.assertIsNone(t.augment_unlabeled)


class TestTrainerOptimization(unittest.TestCase):
    """One full-batch step from zero weights on sided_dataset(), worked by hand.

    Inputs are x/255: x_a = (230, 20, 230, 20)/255 for class 0, x_b its mirror.
    At zero weights softmax is (1/2, 1/2), so with label smoothing s the
    logit gradient of a class-0 image is (-(1-s)/2, (1-s)/2) / 8 and the
    reverse for class 1: dW_0 = (1-s)/4 (x_b - x_a), dW_1 = -dW_0, db = 0.
    Each entry of dW has magnitude (1-s)/4 * 210/255."""

    D = 210 / 255  # |x_a - x_b| per pixel
    SIGNS = [1, -1, 1, -1, -1, 1, -1, 1]  # sign of -dW for W_0 then W_1

    def step(self, steps=1, **settings):
        model = tiny_model()
        p = model.params
        for i in range(len(p)):
            p[i] = 0.0
        base = dict(batch_size=8, mean=0.0, std=1.0, prefetch=0)
        if "step_size" not in settings:
            base["schedule"] = "constant"
        base.update(settings)
        libdel.Trainer.supervised(model, sided_dataset(), **base).fit(steps)
        return model.params.tolist()

    def assert_weights(self, got, magnitude, places=6):
        for g, sign in zip(got[:8], self.SIGNS):
            self.assertAlmostEqual(g, sign * magnitude, places=places)
        self.assertEqual(got[8:], [0.0, 0.0])

    def test_sgd_step_is_minus_lr_times_the_gradient(self):
        got = self.step(lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False)
        self.assert_weights(got, self.D / 4)

    def test_label_smoothing_scales_the_gradient_by_one_minus_s(self):
        got = self.step(lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False,
                        label_smoothing=0.2)
        self.assert_weights(got, 0.8 * self.D / 4)

    def test_clip_norm_limits_the_step_to_lr_times_max_norm(self):
        # ||dW|| = sqrt(8) * D / 4 = 0.58 > 0.1, so the step is scaled to norm 0.1.
        got = self.step(lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False, clip_norm=0.1)
        self.assert_weights(got, 0.1 / math.sqrt(8), places=5)

    def test_adamw_first_step_moves_each_weight_by_lr(self):
        # m_hat / sqrt(v_hat) = sign(g) at step 1; zero gradients do not move.
        got = self.step(optimizer="adamw", lr=0.01, weight_decay=0.0)
        self.assert_weights(got, 0.01)

    def test_warmup_starts_at_a_quarter_of_the_lr(self):
        got = self.step(optimizer="adamw", lr=0.01, weight_decay=0.0, warmup=4)
        self.assert_weights(got, 0.0025)

    def test_step_schedule_decays_after_step_size(self):
        # The second step's lr is gamma = 1e-6: the weights stay where step 1 left them.
        got = self.step(steps=2, lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False,
                        step_size=1, gamma=1e-6)
        self.assert_weights(got, self.D / 4, places=5)
        moved = self.step(steps=2, lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False,
                          step_size=1, gamma=1.0)
        self.assertGreater(abs(moved[0] - got[0]), 1e-3)

    def test_optimizer_settings_are_kept_per_optimizer(self):
        t = libdel.Trainer.supervised(tiny_model(), sided_dataset(), optimizer="adamw",
                                      lr=0.01, betas=(0.8, 0.9))
        self.assertEqual(t.optimizer, "adamw")
        t.set(optimizer="sgd", momentum=0.5)
        self.assertEqual(t.optimizer, "sgd")
        with self.assertRaises(libdel.InvalidArgument) as cm:
            t.set(betas=(0.9, 0.99))
        self.assertIn("betas", str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            t.set(optimizer="rmsprop")

    def test_trainer_optimizer_errors_carry_the_c_message(self):
        t = libdel.Trainer.supervised(tiny_model(), sided_dataset())
        for settings, name in ((dict(optimizer="adamw", eps=0.0), "del_trainer_set_adamw"),
                               (dict(step_size=0), "del_trainer_set_step_schedule"),
                               (dict(warmup=-1), "del_trainer_set_warmup"),
                               (dict(clip_norm=-1.0), "del_trainer_set_clip_norm"),
                               (dict(label_smoothing=1.0), "del_trainer_set_label_smoothing")):
            with self.assertRaises(libdel.InvalidArgument) as cm:
                t.set(**settings)
            self.assertIn(name, str(cm.exception))
        with self.assertRaises(libdel.InvalidArgument):
            t.set(schedule="cosine", step_size=10)


class TestProgress(unittest.TestCase):
    def setUp(self):
        self.trainer = libdel.Trainer.supervised(tiny_model(), tiny_dataset(), batch_size=4)

    def test_progress_sees_every_step_and_total(self):
        seen = []
        self.trainer.fit(6, progress=lambda s, total, loss: seen.append((s, total)), every=2)
        self.assertEqual(seen, [(2, 6), (4, 6), (6, 6)])

    def test_callback_returning_true_cancels(self):
        seen = []

        def stop_at_3(step, total, loss):
            seen.append(step)
            return step == 3

        with self.assertRaises(libdel.Canceled):
            self.trainer.fit(10, progress=stop_at_3)
        self.assertEqual(seen, [1, 2, 3])

    def test_exception_in_callback_is_reraised_from_fit(self):
        class Boom(Exception):
            pass

        def explode(step, total, loss):
            if step == 2:
                raise Boom("from the callback")

        with self.assertRaises(Boom) as cm:
            self.trainer.fit(10, progress=explode)
        self.assertEqual(str(cm.exception), "from the callback")
        # The trainer is usable afterwards, without the old callback.
        self.trainer.fit(2)


class TestDeterminism(unittest.TestCase):
    def train_params(self, threads):
        old = libdel.get_num_threads()
        libdel.set_num_threads(threads)
        try:
            m = libdel.Model.from_spec("input 1 2 2; flatten; linear 8; relu; dropout 0.25; "
                                       "linear 2").init(3)
            libdel.Trainer.supervised(m, tiny_dataset(), batch_size=4, seed=11).fit(25)
            return m.params.tobytes()
        finally:
            libdel.set_num_threads(old)

    def test_same_seed_gives_identical_weights_whatever_threads(self):
        a = self.train_params(1)
        self.assertEqual(a, self.train_params(1))
        self.assertEqual(a, self.train_params(2))


@unittest.skipUnless(_util.HAVE_FMNIST, "Fashion-MNIST not installed (dataset-fashion-mnist)")
class TestFashionMnistTraining(unittest.TestCase):
    def test_mlp_200_steps_on_500_images_beats_74_percent(self):
        train = libdel.Dataset.fashion_mnist("train", _util.FMNIST_DIR)
        test = libdel.Dataset.fashion_mnist("test", _util.FMNIST_DIR)
        labeled, _ = train.split_per_class(50)
        self.assertEqual(len(labeled), 500)
        model = libdel.Model.preset("mlp").init(0)
        trainer = libdel.Trainer.supervised(model, labeled, seed=0)
        losses = []
        trainer.fit(200, progress=lambda s, t, loss: losses.append(loss), every=50)
        self.assertLess(losses[-1], losses[0])
        # About 0.79 with these settings; chance is 0.10.
        self.assertGreater(trainer.evaluate(test), 0.74)
        self.assertFalse(model.training)


if __name__ == "__main__":
    unittest.main()
