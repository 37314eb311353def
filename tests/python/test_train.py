"""The supervised trainer: accuracy, settings, progress callbacks, determinism."""

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
